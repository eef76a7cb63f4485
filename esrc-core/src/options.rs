//! Store options by name: how a store's builder takes `key=value` settings (from a URL's
//! query string, a configuration file, the command line) and documents them, so that
//! `esrc::connect` and the `esrc` command need to know no store's options.

use std::time::Duration;

use crate::Error;

/// One option a store's builder takes by name, as its documentation table shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreOption {
    /// The name, as written in a URL's query string (`schema`, `replicas`).
    pub name: &'static str,
    /// What it sets, in a few words.
    pub meaning: &'static str,
    /// Its default, as it would be written.
    pub default: &'static str,
    /// A value it accepts, as it would be written (used by tests and examples).
    pub example: &'static str,
}

/// A store builder that takes its options by name, modelled on `object_store`'s
/// `with_config`: each builder owns its option table ([`OPTIONS`](Self::OPTIONS)) and
/// parses its own values, so that opening a store from a URL only picks the builder.
///
/// ```
/// use esrc_core::backend::{StoreOption, StoreOptions};
/// use esrc_core::Error;
///
/// #[derive(Debug, Default)]
/// struct Builder { shards: u32 }
///
/// impl StoreOptions for Builder {
///     const STORE: &'static str = "sharded";
///     const OPTIONS: &'static [StoreOption] = &[StoreOption {
///         name: "shards", meaning: "how many shards", default: "1", example: "4",
///     }];
///     fn with_option(mut self, key: &str, value: &str) -> Result<Self, Error> {
///         match key {
///             "shards" => self.shards = esrc_core::backend::parse_option(key, value, "a number")?,
///             _ => return Err(esrc_core::backend::unknown_option::<Self>(key)),
///         }
///         Ok(self)
///     }
/// }
///
/// let built = Builder::default().with_options([("shards", "4")]).unwrap();
/// assert_eq!(built.shards, 4);
/// let refused = Builder::default().with_option("shard", "4").unwrap_err();
/// assert!(refused.to_string().contains("unknown option `shard` for a `sharded` store"));
/// ```
pub trait StoreOptions: Sized {
    /// The store's name in messages (`postgres`, `nats`).
    const STORE: &'static str;
    /// Every option [`with_option`](Self::with_option) takes.
    const OPTIONS: &'static [StoreOption];

    /// Sets the option `key` to `value`. An unknown key or a value that does not parse is
    /// [`Error::InvalidConfig`], naming the option and what it expects (never ignored).
    fn with_option(self, key: &str, value: &str) -> Result<Self, Error>;

    /// Sets several options in turn; the first one refused is the error.
    fn with_options<K: AsRef<str>, V: AsRef<str>>(
        self,
        options: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self, Error> {
        options.into_iter().try_fold(self, |builder, (key, value)| {
            builder.with_option(key.as_ref(), value.as_ref())
        })
    }

    /// Whether `key` is one of [`OPTIONS`](Self::OPTIONS).
    fn takes(key: &str) -> bool {
        Self::OPTIONS.iter().any(|option| option.name == key)
    }
}

/// The error for an option the builder `B` does not take.
pub fn unknown_option<B: StoreOptions>(key: &str) -> Error {
    let known: Vec<&str> = B::OPTIONS.iter().map(|option| option.name).collect();
    Error::invalid_config(format!(
        "unknown option `{key}` for a `{}` store (it takes: {})",
        B::STORE,
        known.join(", ")
    ))
}

/// Parses the value of the option `key`; `what` says what it expects (`a number of
/// rows`) in the error.
pub fn parse_option<T: std::str::FromStr>(key: &str, value: &str, what: &str) -> Result<T, Error> {
    value
        .parse()
        .map_err(|_| Error::invalid_config(format!("option `{key}={value}`: expected {what}")))
}

/// Parses a `true`/`false` option.
pub fn parse_flag(key: &str, value: &str) -> Result<bool, Error> {
    parse_option(key, value, "`true` or `false`")
}

/// Parses a duration option written with a unit: `500ms`, `5s`, `2m`, `1h`, `7d`.
///
/// ```
/// use std::time::Duration;
/// use esrc_core::backend::parse_duration;
/// assert_eq!(parse_duration("poll", "500ms").unwrap(), Duration::from_millis(500));
/// assert_eq!(parse_duration("poll", "2m").unwrap(), Duration::from_secs(120));
/// assert_eq!(parse_duration("max_age", "30d").unwrap(), Duration::from_secs(30 * 86_400));
/// assert!(parse_duration("poll", "5").is_err(), "a unit is needed");
/// ```
pub fn parse_duration(key: &str, value: &str) -> Result<Duration, Error> {
    duration(value).ok_or_else(|| {
        Error::invalid_config(format!(
            "option `{key}={value}`: expected a duration such as `500ms`, `5s`, `2m`, `1h` or `7d`"
        ))
    })
}

fn duration(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let seconds = match unit {
        "ms" => return Some(Duration::from_millis(number)),
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    number.checked_mul(seconds).map(Duration::from_secs)
}

/// Checks a builder's option table against its parser: every option takes its example,
/// and a name not in the table is refused. Each store's tests call it.
pub fn check_option_table<B: StoreOptions>(new: impl Fn() -> B) -> Result<(), String> {
    for option in B::OPTIONS {
        if let Err(error) = new().with_option(option.name, option.example) {
            return Err(format!("`{}={}`: {error}", option.name, option.example));
        }
    }
    match new().with_option("no_such_option", "1") {
        Err(Error::InvalidConfig { .. }) => Ok(()),
        _ => Err("an unknown option was not refused".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_have_units() {
        assert_eq!(duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(duration("5s"), Some(Duration::from_secs(5)));
        assert_eq!(duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(duration("7d"), Some(Duration::from_secs(7 * 86_400)));
        for bad in ["5", "s", "", "5 s", "-1s", "1.5s", "5w"] {
            assert_eq!(duration(bad), None, "{bad}");
        }
    }
}
