pub const IDEMPOTENCY_KEY_MAX_CHARS: usize = 64;

/// The client's name for one intended chat, from the `Idempotency-Key`
/// header: 1-64 printable ASCII characters, no space at either end. A retry
/// that carries the same key is answered with the first reply and is not
/// charged again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty() || raw.len() > IDEMPOTENCY_KEY_MAX_CHARS {
            return Err(format!("must be 1-{IDEMPOTENCY_KEY_MAX_CHARS} characters"));
        }
        if !raw.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
            return Err("may contain only printable ASCII characters".into());
        }
        // HTTP drops white space around a header value, so such a key could
        // not arrive as sent; refusing it keeps one rule for every way in.
        if raw.starts_with(' ') || raw.ends_with(' ') {
            return Err("may not start or end with a space".into());
        }
        Ok(IdempotencyKey(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key bound to the request it was sent with, as `request`'s
    /// bytes: a retry under the same key with other bytes is refused.
    pub fn bind(&self, request: &[u8]) -> KeyedRequest {
        KeyedRequest {
            key: self.clone(),
            request_hash: sha256_hex(request),
        }
    }
}

/// SHA-256 in lower-case hex: how keys and requests are named at rest.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An idempotency key and the SHA-256 (hex) of the request it came with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyedRequest {
    pub key: IdempotencyKey,
    pub request_hash: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_keys_of_1_to_64_characters_are_accepted() {
        for ok in ["a", "retry-7f3c", "order #42 / attempt", &"k".repeat(64)] {
            assert!(IdempotencyKey::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn empty_long_and_non_printable_keys_are_rejected() {
        for bad in [
            "",
            &"k".repeat(65),
            "tab\there",
            "new\nline",
            "é",
            "\u{7f}",
            " ",
            " key",
            "key ",
        ] {
            assert!(IdempotencyKey::parse(bad).is_err(), "{bad:?}");
        }
    }
}
