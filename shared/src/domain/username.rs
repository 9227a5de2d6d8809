use std::fmt;

use unicode_normalization::UnicodeNormalization;

/// Django's limit for `User.username`, which the original clients were built on.
pub const USERNAME_MAX_CHARS: usize = 150;

/// The symbols a username may hold besides letters and digits (Django's).
const SYMBOLS: &str = "@.+-_";

/// A username: 1-150 characters, each a letter, a digit or one of `@.+-_`
/// (Django's username rule). Case is kept and significant.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Username(String);

impl Username {
    /// A new username: its letters and digits are ASCII (as Django's
    /// `ASCIIUsernameValidator`). Unicode's letters would need the Unicode
    /// version of whoever checks them: the contract's JSON Schema pattern
    /// would then mean one thing to Rust's standard library, another to a
    /// regex engine built on an older Unicode, and no pattern could say
    /// exactly what the server takes. ASCII also keeps new look-alike names
    /// (Cyrillic "а" for Latin "a") out.
    ///
    /// Not normalised: a name that only NFKC would make ASCII ("ａｌｉｃｅ",
    /// "𝐚𝐥𝐢𝐜𝐞") is refused, so no second "alice" can be registered, and the
    /// contract's pattern still says exactly what is taken.
    pub fn parse(raw: &str) -> Result<Self, String> {
        Self::check(raw, |c| c.is_ascii_alphanumeric())?;
        Ok(Username(raw.to_owned()))
    }

    /// A username that may have been registered under the earlier rule,
    /// whose letters and digits were any of Unicode's: what login and the
    /// tokens of those users still take. In Unicode NFKC, as Django's login
    /// form normalises it, so "ａｌｉｃｅ" (full-width) logs in as "alice".
    pub fn parse_existing(raw: &str) -> Result<Self, String> {
        let name: String = raw.nfkc().collect();
        Self::check(&name, char::is_alphanumeric)?;
        Ok(Username(name))
    }

    /// A name as our own tables hold it (a hold's, an account's key): taken
    /// as it is, never normalised, since it names an item that exists under
    /// exactly this spelling; still refused if it could never have been one.
    pub fn from_stored(raw: &str) -> Result<Self, String> {
        Self::check(raw, char::is_alphanumeric)?;
        Ok(Username(raw.to_owned()))
    }

    fn check(raw: &str, letter_or_digit: impl Fn(char) -> bool) -> Result<(), String> {
        let chars = raw.chars().count();
        if chars == 0 {
            return Err("may not be blank".into());
        }
        if chars > USERNAME_MAX_CHARS {
            return Err(format!("must be at most {USERNAME_MAX_CHARS} characters"));
        }
        if !raw
            .chars()
            .all(|c| letter_or_digit(c) || SYMBOLS.contains(c))
        {
            return Err("may contain only letters, digits and @ . + - _".into());
        }
        Ok(())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The name a login is for, as the login slow-down counts it: a name that
/// may have an account, or one that never can (blank, too long, a
/// character no username has). Both are counted and slowed down alike, so
/// no answer tells an impossible name from an unknown or a real one.
#[derive(Clone, PartialEq, Eq)]
pub enum LoginName {
    Possible(Username),
    /// As sent (the store keeps only its digest).
    Impossible(String),
}

impl LoginName {
    pub fn parse(raw: &str) -> Self {
        match Username::parse_existing(raw) {
            Ok(name) => LoginName::Possible(name),
            Err(_) => LoginName::Impossible(raw.to_owned()),
        }
    }

    /// The username, if the name may have an account.
    pub fn username(&self) -> Option<&Username> {
        match self {
            LoginName::Possible(name) => Some(name),
            LoginName::Impossible(_) => None,
        }
    }
}

// What a login was sent is now and then a password typed into the wrong
// field: an impossible name is never printed.
impl fmt::Debug for LoginName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoginName::Possible(name) => write!(f, "LoginName({name})"),
            LoginName::Impossible(_) => f.write_str("LoginName(<impossible>)"),
        }
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_digits_and_the_five_symbols_are_accepted() {
        for ok in ["alice", "Bob_42", "a.b+c-d@e", "x", "Z9"] {
            assert_eq!(Username::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn new_names_are_ascii_and_earlier_unicode_names_still_parse() {
        for earlier in ["josé", "用户", "аlice"] {
            assert!(Username::parse(earlier).is_err(), "{earlier}");
            assert_eq!(Username::parse_existing(earlier).unwrap().as_str(), earlier);
        }
    }

    #[test]
    fn compatibility_forms_cannot_register_and_log_in_as_the_plain_name() {
        for look_alike in ["ａｌｉｃｅ", "𝐚𝐥𝐢𝐜𝐞", "ａlice", "ªlice"] {
            assert!(Username::parse(look_alike).is_err(), "{look_alike}");
            assert_eq!(
                Username::parse_existing(look_alike).unwrap().as_str(),
                "alice"
            );
        }
        // Composed and decomposed accents are one name too.
        assert_eq!(
            Username::parse_existing("jose\u{301}").unwrap(),
            Username::parse_existing("jos\u{e9}").unwrap()
        );
    }

    #[test]
    fn an_empty_username_is_rejected() {
        assert!(Username::parse("").is_err());
        assert!(Username::parse_existing("").is_err());
    }

    #[test]
    fn a_username_of_150_characters_is_accepted_and_151_rejected() {
        assert!(Username::parse(&"a".repeat(150)).is_ok());
        assert!(Username::parse(&"a".repeat(151)).is_err());
        assert!(Username::parse_existing(&"é".repeat(150)).is_ok());
        assert!(Username::parse_existing(&"é".repeat(151)).is_err());
    }

    #[test]
    fn spaces_slashes_and_control_characters_are_rejected() {
        for bad in [
            "a b", " alice", "a/b", "a\u{0}", "a\nb", "<script>", "a:b", "a\"b",
        ] {
            assert!(Username::parse(bad).is_err(), "{bad:?}");
            assert!(Username::parse_existing(bad).is_err(), "{bad:?}");
        }
    }
}
