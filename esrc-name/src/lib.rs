#![doc = include_str!("../README.md")]
#![no_std]

/// The longest accepted name, in bytes.
pub const MAX_NAME_LEN: usize = 128;

/// Why a name is not valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Invalid {
    /// The name is empty.
    Empty,
    /// The name is longer than [`MAX_NAME_LEN`] bytes.
    TooLong,
    /// The name holds a character other than an ASCII letter, digit, `_` or `-`.
    Character,
}

impl Invalid {
    /// Why, in a few words.
    pub const fn reason(self) -> &'static str {
        match self {
            Invalid::Empty => "a name cannot be empty",
            Invalid::TooLong => "a name is at most 128 bytes long",
            Invalid::Character => "a name may contain only ASCII letters, digits, `_` and `-`",
        }
    }
}

/// Checks `name` against the rule, without allocating; usable in `const` context.
pub const fn check(name: &str) -> Result<(), Invalid> {
    let bytes = name.as_bytes();
    if bytes.is_empty() {
        return Err(Invalid::Empty);
    }
    if bytes.len() > MAX_NAME_LEN {
        return Err(Invalid::TooLong);
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if !(b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
            return Err(Invalid::Character);
        }
        i += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule() {
        for ok in ["a", "Tab", "tab_2", "x-y"] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
        let longest = [b'a'; MAX_NAME_LEN];
        let longest = core::str::from_utf8(&longest).unwrap_or_default();
        assert_eq!(check(longest), Ok(()));
        let too_long = [b'a'; MAX_NAME_LEN + 1];
        let too_long = core::str::from_utf8(&too_long).unwrap_or_default();
        assert_eq!(check(too_long), Err(Invalid::TooLong));
        for bad in ["a.b", "a b", "*", ">", "é", "a/b"] {
            assert_eq!(check(bad), Err(Invalid::Character), "{bad}");
        }
        assert_eq!(check(""), Err(Invalid::Empty));
    }
}
