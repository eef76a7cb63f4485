//! Errors shown to a person: the message, then each cause once.

use std::error::Error as StdError;
use std::fmt;

/// An error ready to be shown to a person: its message on the first line, then each
/// cause on a line of its own (`caused by: …`), leaving out a cause the line above already
/// says. esrc's errors put what to do in their message (run the migrations, check
/// `sslrootcert`, …), so the first line is the one to read.
///
/// Any error converts into it with `?`, so `main` can return it; a failure then prints
/// as the report, not as a `Debug` dump:
///
/// ```
/// # async fn store() -> Result<(), esrc_core::Error> { Ok(()) }
/// #[tokio::main(flavor = "current_thread")]
/// async fn main() -> Result<(), esrc_core::Report> {
///     store().await?;
///     Ok(())
/// }
/// ```
///
/// ```
/// use esrc_core::{Error, Report};
///
/// #[derive(Debug, thiserror::Error)]
/// #[error("cannot connect to 127.0.0.1:5432")]
/// struct Connect(#[source] std::io::Error);
///
/// let reset = std::io::Error::other("connection reset");
/// let error = Error::backend("postgres", true, Connect(reset));
/// let report = Report::from(error);
/// assert_eq!(
///     report.to_string(),
///     "cannot connect to 127.0.0.1:5432\n  caused by: connection reset"
/// );
/// ```
pub struct Report(Box<dyn StdError + Send + Sync + 'static>);

impl<E: StdError + Send + Sync + 'static> From<E> for Report {
    fn from(error: E) -> Self {
        Report(Box::new(error))
    }
}

impl Report {
    /// The error reported.
    pub fn error(&self) -> &(dyn StdError + Send + Sync + 'static) {
        &*self.0
    }

    /// The error reported, boxed.
    pub fn into_inner(self) -> Box<dyn StdError + Send + Sync + 'static> {
        self.0
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&chain(&*self.0))
    }
}

/// `error`'s message, then each cause on a line of its own, leaving out a cause the line
/// above already says: how a [`Report`] reads.
pub(crate) fn chain(error: &(dyn StdError + 'static)) -> String {
    let mut text = String::new();
    for (index, line) in lines(error).into_iter().enumerate() {
        if index > 0 {
            text.push_str("\n  caused by: ");
        }
        text.push_str(&line);
    }
    text
}

/// The messages of `error` and of each of its causes, leaving out a cause the message
/// before already says (errors of other libraries often repeat their cause).
fn lines(error: &(dyn StdError + 'static)) -> Vec<String> {
    let mut lines = vec![error.to_string()];
    let mut cause = error.source();
    while let Some(current) = cause {
        let line = current.to_string();
        if lines.last().is_none_or(|said| !said.contains(&line)) {
            lines.push(line);
        }
        cause = current.source();
    }
    lines
}

/// An error and its causes on one line, `message: cause: cause`, each said once: what a
/// log line shows. esrc's errors say only their own layer in their `Display` (their
/// cause is their [`source`](StdError::source)), so `error.to_string()` alone leaves the
/// causes out.
///
/// ```
/// use esrc_core::{Chain, DecodeError, Error, Position};
///
/// let json = serde_json::from_str::<u32>("x").unwrap_err();
/// let error = Error::format("Tab", Position(7), 1, DecodeError::Payload(json));
/// assert_eq!(error.to_string(), "cannot decode `Tab` payload at position 7 (schema version 1)");
/// assert_eq!(
///     Chain(&error).to_string(),
///     "cannot decode `Tab` payload at position 7 (schema version 1): invalid payload: \
///      expected value at line 1 column 1"
/// );
/// ```
#[derive(Clone, Copy)]
pub struct Chain<'a>(pub &'a (dyn StdError + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&lines(self.0).join(": "))
    }
}

impl fmt::Debug for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The same as [`Display`](fmt::Display), so that `main` returning a `Report` prints the
/// report.
impl fmt::Debug for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot open the store: {0}")]
    struct Repeats(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("the command failed")]
    struct Wraps(#[source] Repeats);

    #[test]
    fn each_cause_once_on_a_line_of_its_own() {
        let report = Report::from(Wraps(Repeats(std::io::Error::other("refused"))));
        assert_eq!(
            report.to_string(),
            "the command failed\n  caused by: cannot open the store: refused"
        );
        assert_eq!(format!("{report:?}"), report.to_string());
    }

    /// What a chain printer that trusts `source()` shows (anyhow's `{:#}`, eyre, a plain
    /// `caused by:` loop): every message down the chain, none left out.
    fn every_message(error: &(dyn StdError + 'static)) -> Vec<String> {
        let mut messages = vec![error.to_string()];
        let mut cause = error.source();
        while let Some(current) = cause {
            messages.push(current.to_string());
            cause = current.source();
        }
        messages
    }

    #[derive(Debug, thiserror::Error)]
    #[error("cannot connect to 127.0.0.1:5432")]
    struct Connect(#[source] std::io::Error);

    /// The reported failure: `Backend`, `Format` and `Encode` put their source in their
    /// message and returned it as `source()` too, so every cause was printed twice.
    #[test]
    fn an_esrc_error_says_each_cause_once_along_its_sources() {
        let backend = Error::backend(
            "postgres",
            true,
            Connect(std::io::Error::other("connection reset")),
        );
        assert_eq!(
            every_message(&backend),
            ["cannot connect to 127.0.0.1:5432", "connection reset"]
        );
        let json = serde_json::from_str::<u32>("x").unwrap_err();
        let format = Error::Format {
            category: "Tab".into(),
            position: crate::Position(3),
            schema_version: 1,
            source: crate::DecodeError::Payload(json),
        };
        assert_eq!(
            every_message(&format),
            [
                "cannot decode `Tab` payload at position 3 (schema version 1)",
                "invalid payload",
                "expected value at line 1 column 1",
            ]
        );
        let json = serde_json::from_str::<u32>("x").unwrap_err();
        let encode = Error::Encode {
            category: "Tab".into(),
            source: json,
        };
        assert_eq!(every_message(&encode).len(), 2);
        assert!(!every_message(&encode)[0].contains("expected value"));
        let rejected: crate::CommandError<Connect> =
            crate::CommandError::Rejected(Connect(std::io::Error::other("refused")));
        assert_eq!(
            every_message(&rejected),
            [
                "command rejected",
                "cannot connect to 127.0.0.1:5432",
                "refused"
            ]
        );
    }
}
