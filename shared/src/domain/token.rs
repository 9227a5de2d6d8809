use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use super::{KeyRing, Username};

/// 256 bits from the OS CSPRNG: unguessable, and enough that hashing with a
/// fast SHA-256 (not a password hash) is safe for storage.
const SECRET_BYTES: usize = 32;
/// The expiry, seconds since the epoch, as a big-endian u64.
const EXPIRY_BYTES: usize = 8;
/// HMAC-SHA256 cut to 128 bits: forging one still takes 2^128 guesses,
/// and the token stays short.
const MAC_BYTES: usize = 16;
/// secret, expiry, key id, MAC.
const PAYLOAD_BYTES: usize = SECRET_BYTES + EXPIRY_BYTES + 1 + MAC_BYTES;
/// Bytes of SHA-256 kept as a session's id in the account item: 128 bits
/// are as hard to find a preimage for as a token is to guess, and 22
/// characters per session keep the account item small.
const SESSION_ID_BYTES: usize = 16;
/// Domain separation: a MAC made for a session token can never stand for
/// an API key or anything else the same key might one day sign.
const MAC_CONTEXT: &[u8] = b"chat-api token v1\0";
const KEY_MAC_CONTEXT: &[u8] = b"chat-api key v1\0";

/// What an API key starts with, as OpenAI's do, so secret scanners and
/// people tell a key from a session token at a glance.
pub const API_KEY_PREFIX: &str = "sk-";

/// A login session's token, or an API key made with `POST /keys/`. Both
/// authenticate the same way; they live in different maps of the account
/// (`sessions`, `keys`), so logins never push keys out and a key can be
/// listed and revoked by itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    Session,
    ApiKey,
}

impl TokenKind {
    fn mac_context(self) -> &'static [u8] {
        match self {
            TokenKind::Session => MAC_CONTEXT,
            TokenKind::ApiKey => KEY_MAC_CONTEXT,
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            TokenKind::Session => "",
            TokenKind::ApiKey => API_KEY_PREFIX,
        }
    }
}

/// The server's key for signing tokens, loaded once per cold start.
///
/// A token carries its user, its expiry and a MAC under this key, so a
/// forged or expired token is refused in code, before any DynamoDB call:
/// it never takes part in a transaction on the item of the user it names.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey {
    id: u8,
    secret: [u8; 32],
}

impl SigningKey {
    /// A new key from the OS CSPRNG.
    pub fn generate(id: u8) -> Result<Self, getrandom::Error> {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret)?;
        Ok(SigningKey { id, secret })
    }

    /// A key as stored; `None` unless it is exactly 32 bytes.
    pub fn from_parts(id: u8, secret: &[u8]) -> Option<Self> {
        Some(SigningKey {
            id,
            secret: secret.try_into().ok()?,
        })
    }

    pub fn id(&self) -> u8 {
        self.id
    }

    /// The key material, for the one write that stores it.
    pub fn expose(&self) -> &[u8] {
        &self.secret
    }

    fn mac(&self, kind: TokenKind, username: &Username, signed: &[u8]) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.secret)
            .expect("HMAC takes a key of any length");
        mac.update(kind.mac_context());
        // The length first, so no (name, payload) pair reads as another.
        mac.update(&(username.as_str().len() as u32).to_be_bytes());
        mac.update(username.as_str().as_bytes());
        mac.update(signed);
        mac
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({}, <redacted>)", self.id)
    }
}

/// A login token: `base64url(username) "." base64url(secret, expiry, key
/// id, MAC)`.
///
/// The username says which account item to check; the MAC (over the name,
/// the secret, the expiry and the key id) says the server issued it; the
/// session entry in the account item, stored under the [`SessionId`], says
/// it has not been revoked.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthToken {
    kind: TokenKind,
    username: Username,
    raw: String,
    payload: [u8; PAYLOAD_BYTES],
}

/// The first 128 bits of SHA-256 of a token, base64url: the only form of a
/// token kept at rest, as the key of its session in the account item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionId(String);

impl SessionId {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// An id as a client gives it back (an API key's `id`): exactly the
    /// form [`AuthToken::session_id`] makes, 16 bytes in unpadded
    /// base64url, so 22 characters whose last is one of `A Q g w`.
    pub fn parse(text: &str) -> Option<SessionId> {
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        // The decoder takes stray low bits in the last character; only the
        // canonical spelling is an id.
        (bytes.len() == SESSION_ID_BYTES && URL_SAFE_NO_PAD.encode(&bytes) == text)
            .then(|| SessionId(text.to_owned()))
    }
}

impl AuthToken {
    /// A new session token for `username`, valid until `expires_at`
    /// (epoch seconds).
    pub fn issue(
        username: &Username,
        expires_at: i64,
        key: &SigningKey,
    ) -> Result<VerifiedToken, getrandom::Error> {
        Self::issue_kind(TokenKind::Session, username, expires_at, key)
    }

    /// A new token of `kind` for `username`, valid until `expires_at`.
    pub fn issue_kind(
        kind: TokenKind,
        username: &Username,
        expires_at: i64,
        key: &SigningKey,
    ) -> Result<VerifiedToken, getrandom::Error> {
        let mut payload = [0u8; PAYLOAD_BYTES];
        getrandom::fill(&mut payload[..SECRET_BYTES])?;
        let expiry = u64::try_from(expires_at).unwrap_or(0).to_be_bytes();
        payload[SECRET_BYTES..SECRET_BYTES + EXPIRY_BYTES].copy_from_slice(&expiry);
        payload[SECRET_BYTES + EXPIRY_BYTES] = key.id;
        let signed_len = PAYLOAD_BYTES - MAC_BYTES;
        let tag = key
            .mac(kind, username, &payload[..signed_len])
            .finalize()
            .into_bytes();
        payload[signed_len..].copy_from_slice(&tag[..MAC_BYTES]);
        let raw = format!(
            "{}{}.{}",
            kind.prefix(),
            URL_SAFE_NO_PAD.encode(username.as_str()),
            URL_SAFE_NO_PAD.encode(payload)
        );
        Ok(VerifiedToken(AuthToken {
            kind,
            username: username.clone(),
            raw,
            payload,
        }))
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

    /// A token of the right form; whether the server issued it is for
    /// [`AuthToken::verify`] to say.
    pub fn parse(token: &str) -> Option<Self> {
        let (kind, body) = match token.strip_prefix(API_KEY_PREFIX) {
            Some(body) => (TokenKind::ApiKey, body),
            None => (TokenKind::Session, token),
        };
        let (user_part, payload_part) = body.split_once('.')?;
        // Decoding also rejects padding and non-canonical trailing bits, so a
        // token has exactly one spelling and thus exactly one hash.
        let payload = URL_SAFE_NO_PAD.decode(payload_part).ok()?;
        let payload: [u8; PAYLOAD_BYTES] = payload.try_into().ok()?;
        let name = String::from_utf8(URL_SAFE_NO_PAD.decode(user_part).ok()?).ok()?;
        // Login issues tokens to every name it takes, earlier Unicode ones
        // too; a name that normalises to another spelling was never issued.
        let username = Username::parse_existing(&name).ok()?;
        if username.as_str() != name {
            return None;
        }
        Some(AuthToken {
            kind,
            username,
            raw: token.to_owned(),
            payload,
        })
    }

    /// The token, if the key of `ring` it names signed it and it has not
    /// expired at `now` (epoch seconds).
    pub fn verify_with(self, ring: &KeyRing, now: i64) -> Option<VerifiedToken> {
        let key = ring.key(self.key_id())?;
        self.verify(key, now)
    }

    /// The token, if `key` signed it and it has not expired at `now`
    /// (epoch seconds). The MAC is compared in constant time.
    pub fn verify(self, key: &SigningKey, now: i64) -> Option<VerifiedToken> {
        if self.key_id() != key.id || self.expires_at() <= now {
            return None;
        }
        let signed_len = PAYLOAD_BYTES - MAC_BYTES;
        key.mac(self.kind, &self.username, &self.payload[..signed_len])
            .verify_truncated_left(&self.payload[signed_len..])
            .ok()?;
        Some(VerifiedToken(self))
    }

    pub fn username(&self) -> &Username {
        &self.username
    }

    pub fn kind(&self) -> TokenKind {
        self.kind
    }

    /// Epoch seconds after which the token no longer works.
    pub fn expires_at(&self) -> i64 {
        let mut expiry = [0u8; EXPIRY_BYTES];
        expiry.copy_from_slice(&self.payload[SECRET_BYTES..SECRET_BYTES + EXPIRY_BYTES]);
        i64::try_from(u64::from_be_bytes(expiry)).unwrap_or(i64::MAX)
    }

    /// The id of the key that signed it, as the token says.
    pub fn key_id(&self) -> u8 {
        self.payload[SECRET_BYTES + EXPIRY_BYTES]
    }

    pub fn session_id(&self) -> SessionId {
        let digest = Sha256::digest(self.raw.as_bytes());
        SessionId(URL_SAFE_NO_PAD.encode(&digest[..SESSION_ID_BYTES]))
    }

    /// The token itself, for the one response that hands it to its owner.
    pub fn expose(&self) -> &str {
        &self.raw
    }
}

/// A token this server issued, unexpired when it was checked: the only
/// form the store accepts, so nothing unsigned ever reaches DynamoDB.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifiedToken(AuthToken);

impl VerifiedToken {
    pub fn username(&self) -> &Username {
        self.0.username()
    }

    pub fn kind(&self) -> TokenKind {
        self.0.kind()
    }

    pub fn expires_at(&self) -> i64 {
        self.0.expires_at()
    }

    pub fn session_id(&self) -> SessionId {
        self.0.session_id()
    }

    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

impl fmt::Debug for VerifiedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
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

    const NOW: i64 = 1_800_000_000;

    fn alice() -> Username {
        Username::parse("alice").unwrap()
    }

    fn key() -> SigningKey {
        SigningKey::from_parts(1, &[9u8; 32]).unwrap()
    }

    fn issued() -> AuthToken {
        let token = AuthToken::issue(&alice(), NOW + 3600, &key()).unwrap();
        AuthToken::parse(token.expose()).unwrap()
    }

    #[test]
    fn an_issued_token_parses_back_and_verifies_until_it_expires() {
        let token = issued();
        let parsed = AuthToken::parse(token.expose()).unwrap();
        assert_eq!(parsed.username(), &alice());
        assert_eq!(parsed.session_id(), token.session_id());
        assert_eq!(parsed.expires_at(), NOW + 3600);
        assert!(parsed.clone().verify(&key(), NOW).is_some());
        assert!(parsed.clone().verify(&key(), NOW + 3599).is_some());
        assert!(parsed.verify(&key(), NOW + 3600).is_none());
    }

    #[test]
    fn another_key_or_key_id_does_not_verify_it() {
        let token = issued();
        let other_secret = SigningKey::from_parts(1, &[8u8; 32]).unwrap();
        let other_id = SigningKey::from_parts(2, &[9u8; 32]).unwrap();
        assert!(token.clone().verify(&other_secret, NOW).is_none());
        assert!(token.verify(&other_id, NOW).is_none());
    }

    #[test]
    fn a_token_moved_to_another_user_or_with_a_later_expiry_does_not_verify() {
        let token = issued();
        let (_, payload) = token.expose().split_once('.').unwrap();
        let as_bob = format!("{}.{payload}", URL_SAFE_NO_PAD.encode("bob"));
        assert!(AuthToken::parse(&as_bob)
            .unwrap()
            .verify(&key(), NOW)
            .is_none());

        let mut bytes = URL_SAFE_NO_PAD.decode(payload).unwrap();
        bytes[SECRET_BYTES + EXPIRY_BYTES - 1] ^= 1;
        let later = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode("alice"),
            URL_SAFE_NO_PAD.encode(bytes)
        );
        assert!(AuthToken::parse(&later)
            .unwrap()
            .verify(&key(), NOW)
            .is_none());
    }

    #[test]
    fn an_api_key_starts_with_sk_and_is_no_session_token_nor_the_reverse() {
        let api_key = AuthToken::issue_kind(TokenKind::ApiKey, &alice(), NOW + 60, &key()).unwrap();
        assert!(api_key.expose().starts_with("sk-"));
        let parsed = AuthToken::parse(api_key.expose()).unwrap();
        assert_eq!(parsed.kind(), TokenKind::ApiKey);
        assert!(parsed.verify(&key(), NOW).is_some());
        // The same bytes under the other kind: the MAC does not match.
        let as_session = api_key.expose().strip_prefix("sk-").unwrap();
        assert!(AuthToken::parse(as_session)
            .unwrap()
            .verify(&key(), NOW)
            .is_none());
        let session = issued();
        let as_key = format!("sk-{}", session.expose());
        assert!(AuthToken::parse(&as_key)
            .unwrap()
            .verify(&key(), NOW)
            .is_none());
    }

    #[test]
    fn two_tokens_for_one_user_differ() {
        let (a, b) = (issued(), issued());
        assert_ne!(a.expose(), b.expose());
        assert_ne!(a.session_id(), b.session_id());
    }

    #[test]
    fn the_header_may_carry_a_token_or_bearer_scheme() {
        let token = issued();
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
        let raw = issued().expose().to_string();
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
    fn a_token_naming_an_invalid_or_unnormalised_username_is_rejected() {
        let token = issued();
        let (_, payload) = token.expose().split_once('.').unwrap();
        for name in ["bad name", "ａｌｉｃｅ"] {
            let token = format!("{}.{payload}", URL_SAFE_NO_PAD.encode(name));
            assert!(AuthToken::parse(&token).is_none(), "{name}");
        }
    }

    #[test]
    fn the_session_id_is_22_base64url_characters_and_debug_hides_the_secrets() {
        let token = issued();
        let id = token.session_id();
        assert_eq!(id.as_str().len(), 22);
        assert!(URL_SAFE_NO_PAD.decode(id.as_str()).is_ok());
        let payload = token.expose().split_once('.').unwrap().1.to_string();
        assert!(!format!("{token:?}").contains(&payload));
        assert!(!format!("{:?}", key()).contains("9"));
    }

    #[test]
    fn a_session_id_parses_only_in_the_form_it_is_made() {
        let id = issued().session_id();
        assert_eq!(SessionId::parse(id.as_str()), Some(id.clone()));
        let text = id.as_str();
        for bad in [
            "",
            "nope",
            &text[..21],
            &format!("{text}A"),
            &format!("{}B", &text[..21]),
            &format!("{}+", &text[..21]),
            &format!("{}=", &text[..21]),
        ] {
            assert_eq!(SessionId::parse(bad), None, "{bad:?}");
        }
    }
}
