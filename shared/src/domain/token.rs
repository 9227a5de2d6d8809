use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use super::Username;

/// 256 bits from the OS CSPRNG: unguessable, and enough that hashing with a
/// fast SHA-256 (not a password hash) is safe for storage.
const SECRET_BYTES: usize = 32;
/// `SECRET_BYTES` in unpadded base64url.
const SECRET_CHARS: usize = 43;

/// A login token: `base64url(username) "." base64url(32 random bytes)`.
///
/// The username part only tells the server which user row to check in the
/// same DynamoDB call; it is never trusted alone: every use also checks the
/// session stored under the token's hash, which names the same user.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthToken {
    username: Username,
    raw: String,
}

/// SHA-256 of a token, hex: the only form of a token kept at rest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenHash(String);

impl TokenHash {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl AuthToken {
    pub fn generate(username: &Username) -> Result<Self, getrandom::Error> {
        let mut secret = [0u8; SECRET_BYTES];
        getrandom::fill(&mut secret)?;
        let raw = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(username.as_str()),
            URL_SAFE_NO_PAD.encode(secret)
        );
        Ok(AuthToken {
            username: username.clone(),
            raw,
        })
    }

    /// Reads an `Authorization` header value: the bare token, or the token
    /// after a `Token` or `Bearer` scheme (any case), as DRF clients send.
    pub fn from_header(value: &str) -> Option<Self> {
        let value = value.trim();
        let token = match value.split_once(' ') {
            Some((scheme, rest))
                if scheme.eq_ignore_ascii_case("token")
                    || scheme.eq_ignore_ascii_case("bearer") =>
            {
                rest.trim()
            }
            Some(_) => return None,
            None => value,
        };
        Self::parse(token)
    }

    pub fn parse(token: &str) -> Option<Self> {
        let (user_part, secret_part) = token.split_once('.')?;
        if secret_part.len() != SECRET_CHARS {
            return None;
        }
        // Decoding also rejects padding and non-canonical trailing bits, so a
        // token has exactly one spelling and thus exactly one hash.
        let secret = URL_SAFE_NO_PAD.decode(secret_part).ok()?;
        if secret.len() != SECRET_BYTES {
            return None;
        }
        let name = String::from_utf8(URL_SAFE_NO_PAD.decode(user_part).ok()?).ok()?;
        // Tokens of users registered under the earlier, Unicode rule work too.
        let username = Username::parse_existing(&name).ok()?;
        Some(AuthToken {
            username,
            raw: token.to_owned(),
        })
    }

    pub fn username(&self) -> &Username {
        &self.username
    }

    pub fn hash(&self) -> TokenHash {
        TokenHash(super::sha256_hex(self.raw.as_bytes()))
    }

    /// The token itself, for the one response that hands it to its owner.
    pub fn expose(&self) -> &str {
        &self.raw
    }
}

impl fmt::Debug for AuthToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AuthToken({}, <redacted>)", self.username)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Username {
        Username::parse("alice").unwrap()
    }

    #[test]
    fn a_generated_token_parses_back_to_its_user() {
        let token = AuthToken::generate(&alice()).unwrap();
        let parsed = AuthToken::parse(token.expose()).unwrap();
        assert_eq!(parsed.username(), &alice());
        assert_eq!(parsed.hash(), token.hash());
    }

    #[test]
    fn two_tokens_for_one_user_differ() {
        let a = AuthToken::generate(&alice()).unwrap();
        let b = AuthToken::generate(&alice()).unwrap();
        assert_ne!(a.expose(), b.expose());
        assert_ne!(a.hash(), b.hash());
    }

    #[test]
    fn the_header_may_carry_a_token_or_bearer_scheme() {
        let token = AuthToken::generate(&alice()).unwrap();
        let raw = token.expose();
        for header in [
            raw.to_string(),
            format!("Token {raw}"),
            format!("bearer {raw}"),
            format!("  BEARER   {raw} "),
        ] {
            assert_eq!(
                AuthToken::from_header(&header),
                Some(token.clone()),
                "{header}"
            );
        }
        assert_eq!(AuthToken::from_header(&format!("Basic {raw}")), None);
    }

    #[test]
    fn truncated_padded_or_garbled_tokens_are_rejected() {
        let raw = AuthToken::generate(&alice()).unwrap().expose().to_string();
        let bad = [
            String::new(),
            raw[..raw.len() - 1].to_string(),
            format!("{raw}A"),
            format!("{raw}="),
            raw.replace('.', ""),
            format!("{raw}.x"),
            format!("!!!.{}", &raw[raw.find('.').unwrap() + 1..]),
        ];
        for token in bad {
            assert!(AuthToken::parse(&token).is_none(), "{token}");
        }
    }

    #[test]
    fn a_token_naming_an_invalid_username_is_rejected() {
        let secret = URL_SAFE_NO_PAD.encode([7u8; SECRET_BYTES]);
        let token = format!("{}.{}", URL_SAFE_NO_PAD.encode("bad name"), secret);
        assert!(AuthToken::parse(&token).is_none());
    }

    #[test]
    fn the_hash_is_hex_sha256_and_debug_hides_the_secret() {
        let token = AuthToken::generate(&alice()).unwrap();
        let hash = token.hash();
        assert_eq!(hash.as_str().len(), 64);
        assert!(hash.as_str().chars().all(|c| c.is_ascii_hexdigit()));
        let secret_part = token.expose().split_once('.').unwrap().1.to_string();
        assert!(!format!("{token:?}").contains(&secret_part));
    }
}
