use std::fmt;

use unicode_normalization::UnicodeNormalization;

/// Django's limit for `User.username`, which the original clients were built on.
pub const USERNAME_MAX_CHARS: usize = 150;

/// A username: 1-150 characters, each a letter, a digit or one of `@.+-_`
/// (what Django's username validator allows), in Unicode NFKC as Django's
/// `normalize_username` keeps it, so "ａｌｉｃｅ" (full-width) or "𝐚𝐥𝐢𝐜𝐞"
/// (mathematical bold) is the same user as "alice". Case is kept and
/// significant.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Username(String);

impl Username {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let normalized: String = raw.nfkc().collect();
        let raw = normalized.as_str();
        let chars = raw.chars().count();
        if chars == 0 {
            return Err("may not be blank".into());
        }
        if chars > USERNAME_MAX_CHARS {
            return Err(format!("must be at most {USERNAME_MAX_CHARS} characters"));
        }
        if !raw
            .chars()
            .all(|c| c.is_alphanumeric() || "@.+-_".contains(c))
        {
            return Err("may contain only letters, digits and @ . + - _".into());
        }
        Ok(Username(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
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
        for ok in ["alice", "Bob_42", "a.b+c-d@e", "x", "josé", "用户"] {
            assert_eq!(Username::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn compatibility_forms_normalise_to_the_plain_name() {
        for look_alike in ["ａｌｉｃｅ", "𝐚𝐥𝐢𝐜𝐞", "ａlice"] {
            assert_eq!(Username::parse(look_alike).unwrap().as_str(), "alice");
        }
        // Composed and decomposed accents are one name too.
        assert_eq!(
            Username::parse("jose\u{301}").unwrap(),
            Username::parse("jos\u{e9}").unwrap()
        );
    }

    #[test]
    fn an_empty_username_is_rejected() {
        assert!(Username::parse("").is_err());
    }

    #[test]
    fn a_username_of_150_characters_is_accepted_and_151_rejected() {
        assert!(Username::parse(&"é".repeat(150)).is_ok());
        assert!(Username::parse(&"a".repeat(151)).is_err());
    }

    #[test]
    fn spaces_slashes_and_control_characters_are_rejected() {
        for bad in [
            "a b", " alice", "a/b", "a\u{0}", "a\nb", "<script>", "a:b", "a\"b",
        ] {
            assert!(Username::parse(bad).is_err(), "{bad:?}");
        }
    }
}
