//! Validation of names that end up in subjects, tables and keys.

use crate::Error;

/// The longest accepted name, in bytes.
pub const MAX_NAME_LEN: usize = 128;

/// Checks a name without allocating; `Err` holds the reason. Usable in `const` context.
pub const fn check_name(name: &str) -> Result<(), &'static str> {
    let bytes = name.as_bytes();
    if bytes.is_empty() {
        return Err("a name cannot be empty");
    }
    if bytes.len() > MAX_NAME_LEN {
        return Err("a name is at most 128 bytes long");
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if !(b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
            return Err("a name may contain only ASCII letters, digits, `_` and `-`");
        }
        i += 1;
    }
    Ok(())
}

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
pub fn validate_name(name: &str) -> Result<(), Error> {
    check_name(name).map_err(|reason| Error::InvalidName {
        name: name.to_owned(),
        reason,
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
