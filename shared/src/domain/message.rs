/// Bounds the stored item (DynamoDB items max out at 400 KB) and the prompt
/// a real model would be sent.
pub const MESSAGE_MAX_CHARS: usize = 8000;

/// A chat message: 1-8000 characters, not only white space. Kept as sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatMessage(String);

impl ChatMessage {
    pub fn parse(raw: String) -> Result<Self, String> {
        if raw.trim().is_empty() {
            return Err("may not be blank".into());
        }
        if raw.chars().count() > MESSAGE_MAX_CHARS {
            return Err(format!("must be at most {MESSAGE_MAX_CHARS} characters"));
        }
        Ok(ChatMessage(raw))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_messages_are_rejected() {
        for bad in ["", " ", "\n\t "] {
            assert!(ChatMessage::parse(bad.into()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_message_of_8000_characters_is_accepted_and_8001_rejected() {
        assert!(ChatMessage::parse("ü".repeat(8000)).is_ok());
        assert!(ChatMessage::parse("a".repeat(8001)).is_err());
    }

    #[test]
    fn the_message_is_kept_exactly_as_sent() {
        let raw = "  Hello,\nworld!  ";
        assert_eq!(ChatMessage::parse(raw.into()).unwrap().as_str(), raw);
    }
}
