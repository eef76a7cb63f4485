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
/// let error = Error::backend("postgres", true, std::io::Error::other("connection reset"));
/// let report = Report::from(error);
/// assert_eq!(report.to_string(), "postgres error: connection reset");
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
    let mut said = error.to_string();
    let mut text = said.clone();
    let mut cause = error.source();
    while let Some(current) = cause {
        // Many errors repeat their cause in their own message: say it once.
        let line = current.to_string();
        if !said.contains(&line) {
            text.push_str("\n  caused by: ");
            text.push_str(&line);
            said = line;
        }
        cause = current.source();
    }
    text
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
}
