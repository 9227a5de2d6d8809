use std::fmt;

/// NIST SP 800-63B asks for at least 8 characters.
pub const PASSWORD_MIN_CHARS: usize = 8;
/// Long enough for any passphrase; at 4 bytes a character at most, it keeps
/// a password within the 1024 bytes hashing was sized for. Counted in
/// characters, as the contract's JSON Schema (`minLength`, `maxLength`)
/// counts them, so a client can check a password exactly as we do.
pub const PASSWORD_MAX_CHARS: usize = 256;
/// The earlier rule, 8-1024 bytes: passwords registered under it still log
/// in (see [`Password::parse_existing`]).
const EARLIER_MIN_BYTES: usize = 8;
const EARLIER_MAX_BYTES: usize = 1024;

/// A password, any characters. Debug never prints it.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    /// A new password: 8-256 characters.
    pub fn parse(raw: String) -> Result<Self, String> {
        let chars = raw.chars().count();
        if chars < PASSWORD_MIN_CHARS {
            return Err(format!("must be at least {PASSWORD_MIN_CHARS} characters"));
        }
        if chars > PASSWORD_MAX_CHARS {
            return Err(format!("must be at most {PASSWORD_MAX_CHARS} characters"));
        }
        Ok(Password(raw))
    }

    /// A password to check against a stored hash: anything registration
    /// ever took, that is 8-256 characters or, as before, 8-1024 bytes.
    /// Either way at most 1024 bytes reach the hash.
    pub fn parse_existing(raw: String) -> Result<Self, String> {
        if (EARLIER_MIN_BYTES..=EARLIER_MAX_BYTES).contains(&raw.len()) {
            return Ok(Password(raw));
        }
        Self::parse(raw)
    }

    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seven_characters_are_too_short_and_eight_are_enough() {
        assert!(Password::parse("1234567".into()).is_err());
        assert!(Password::parse("12345678".into()).is_ok());
        // Eight bytes but four characters: too short.
        assert!(Password::parse("é".repeat(4)).is_err());
        assert!(Password::parse("é".repeat(8)).is_ok());
    }

    #[test]
    fn the_limit_counts_characters_not_bytes() {
        assert!(Password::parse("𝄞".repeat(256)).is_ok());
        assert!(Password::parse("a".repeat(257)).is_err());
        assert_eq!(
            Password::parse("𝄞".repeat(256)).unwrap().expose().len(),
            1024
        );
    }

    #[test]
    fn what_the_earlier_byte_rule_took_still_logs_in() {
        for earlier in ["é".repeat(4), "a".repeat(1024), "é".repeat(512)] {
            assert!(Password::parse(earlier.clone()).is_err());
            assert!(Password::parse_existing(earlier).is_ok());
        }
        assert!(Password::parse_existing("𝄞".repeat(256)).is_ok());
        for never in ["1234567".to_owned(), "a".repeat(1025), "é".repeat(513)] {
            assert!(Password::parse_existing(never).is_err());
        }
    }

    #[test]
    fn debug_output_hides_the_password() {
        let password = Password::parse("hunter2hunter2".into()).unwrap();
        assert!(!format!("{password:?}").contains("hunter2"));
    }
}
