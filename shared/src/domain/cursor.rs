use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use uuid::Uuid;

/// Where a page starts: the chats older than this chat id. Clients see it
/// as an opaque string; it only ever selects within the caller's own chats,
/// since the user comes from the token, so it needs no signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor(Uuid);

impl Cursor {
    /// The cursor of the page after the one that ends with this chat.
    pub fn after(chat_id: Uuid) -> Self {
        Cursor(chat_id)
    }

    /// The chat the page before ended with: the next page holds only
    /// older ones.
    pub fn chat_id(&self) -> Uuid {
        self.0
    }

    pub fn parse(raw: &str) -> Result<Self, String> {
        let invalid = || "is not a cursor this API returned".to_owned();
        let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| invalid())?;
        let id = Uuid::from_slice(&bytes).map_err(|_| invalid())?;
        Ok(Cursor(id))
    }

    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_anything_else_is_refused() {
        let cursor = Cursor(Uuid::now_v7());
        assert_eq!(Cursor::parse(&cursor.encode()), Ok(cursor));
        for bad in ["", "not base64!", "AAAA", "idempotency#x", &"A".repeat(400)] {
            assert!(Cursor::parse(bad).is_err(), "{bad:?}");
        }
    }
}
