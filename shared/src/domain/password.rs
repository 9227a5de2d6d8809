use std::fmt;

/// NIST SP 800-63B asks for at least 8 characters; counting bytes only ever
/// asks more of a non-ASCII password, and keeps one unit for both limits.
pub const PASSWORD_MIN_BYTES: usize = 8;
/// Long enough for any passphrase, short enough that hashing it is cheap.
pub const PASSWORD_MAX_BYTES: usize = 1024;

/// A password of 8-1024 bytes, any characters. Debug never prints it.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub fn parse(raw: String) -> Result<Self, String> {
        if raw.len() < PASSWORD_MIN_BYTES {
            return Err(format!("must be at least {PASSWORD_MIN_BYTES} bytes"));
        }
        if raw.len() > PASSWORD_MAX_BYTES {
            return Err(format!("must be at most {PASSWORD_MAX_BYTES} bytes"));
        }
        Ok(Password(raw))
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
    fn seven_bytes_are_too_short_and_eight_are_enough() {
        assert!(Password::parse("1234567".into()).is_err());
        assert!(Password::parse("12345678".into()).is_ok());
    }

    #[test]
    fn the_limit_counts_bytes_not_characters() {
        assert!(Password::parse("é".repeat(512)).is_ok());
        assert!(Password::parse(format!("{}x", "é".repeat(512))).is_err());
    }

    #[test]
    fn debug_output_hides_the_password() {
        let password = Password::parse("hunter2hunter2".into()).unwrap();
        assert!(!format!("{password:?}").contains("hunter2"));
    }
}
