//! Validation of names that end up in subjects, tables and keys.

use crate::Error;

pub use esrc_name::MAX_NAME_LEN;

/// Validates a category, projection or namespace name: 1 to 128 ASCII letters, digits,
/// `_` or `-`. Stores call this on every name they are given, because names become parts
/// of NATS subjects, SQL identifiers or keys.
///
/// ```
/// assert!(esrc_core::backend::validate_name("Tab").is_ok());
/// assert!(esrc_core::backend::validate_name("open-tabs_v2").is_ok());
/// assert!(esrc_core::backend::validate_name("tab.opened").is_err());
/// assert!(esrc_core::backend::validate_name("").is_err());
/// ```
///
/// The rule itself is `esrc_name::check`, which esrc-derive applies at compile time:
/// this is its one run-time form.
pub fn validate_name(name: &str) -> Result<(), Error> {
    esrc_name::check(name).map_err(|invalid| Error::InvalidName {
        name: name.to_owned(),
        reason: invalid.reason(),
    })
}

/// Validates every name of a group and returns them owned: what a store does with the
/// categories of `replay` and `subscribe`.
pub fn validate_names(names: &[&str]) -> Result<Vec<String>, Error> {
    names
        .iter()
        .map(|name| validate_name(name).map(|()| (*name).to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_rejects() {
        for ok in ["a", "Tab", "tab_2", "x-y", &"a".repeat(128)] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a.b", "a b", "*", ">", "é", "a/b", &"a".repeat(129)] {
            assert!(
                matches!(validate_name(bad), Err(Error::InvalidName { .. })),
                "{bad}"
            );
        }
    }
}
