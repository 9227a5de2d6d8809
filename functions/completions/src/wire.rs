//! What goes back to an OpenAI client: a `chat.completion`, or the
//! `chat.completion.chunk`s of a stream as server-sent events.

use chat_core::pricing::Usage;
use chat_core::responder::Finish;
use serde_json::{json, Value};
use uuid::Uuid;

/// The fields every chunk of one completion shares.
pub struct Completion<'a> {
    /// `chatcmpl-` and the saved chat's id, so a reply can be found in
    /// `/chats/`.
    pub id: String,
    pub created: i64,
    pub model: &'a str,
}

impl<'a> Completion<'a> {
    pub fn new(chat_id: Uuid, created: i64, model: &'a str) -> Self {
        Completion {
            id: format!("chatcmpl-{}", chat_id.simple()),
            created,
            model,
        }
    }

    /// The whole reply at once (`stream: false`).
    pub fn whole(&self, text: &str, finish: Finish, usage: Usage) -> Value {
        json!({
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": null},
                "logprobs": null,
                "finish_reason": finish.as_str(),
            }],
            "usage": usage_of(usage),
        })
    }

    /// One chunk of a stream: the role first, then pieces of text, then
    /// the finish reason in a chunk of its own, as OpenAI sends them. With
    /// `include_usage` every chunk carries `usage: null` until the last.
    pub fn chunk(&self, delta: Value, finish: Option<Finish>, include_usage: bool) -> Vec<u8> {
        let mut chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{
                "index": 0,
                "delta": delta,
                "logprobs": null,
                "finish_reason": finish.map(Finish::as_str),
            }],
        });
        if include_usage {
            chunk["usage"] = Value::Null;
        }
        event(&chunk)
    }

    /// The last chunk when the client asked for usage: no choices.
    pub fn usage_chunk(&self, usage: Usage) -> Vec<u8> {
        event(&json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": usage_of(usage),
        }))
    }
}

pub fn role_delta() -> Value {
    json!({"role": "assistant", "content": "", "refusal": null})
}

pub fn text_delta(text: &str) -> Value {
    json!({"content": text})
}

/// The end of a stream that went well.
pub const DONE: &[u8] = b"data: [DONE]\n\n";

/// An error after the stream began, when the status line is long gone:
/// OpenAI's SDKs raise an `APIError` from an event holding `error`.
pub fn error_event(error: &Value) -> Vec<u8> {
    event(error)
}

fn event(value: &Value) -> Vec<u8> {
    format!("data: {value}\n\n").into_bytes()
}

/// OpenAI's usage: `prompt_tokens` counts every input token, those read
/// from the prompt cache too, which `prompt_tokens_details.cached_tokens`
/// names apart.
fn usage_of(usage: Usage) -> Value {
    let prompt = usage.prompt_tokens();
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": usage.output_tokens,
        "total_tokens": prompt.saturating_add(usage.output_tokens),
        "prompt_tokens_details": {"cached_tokens": usage.cache_read_tokens},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_is_one_server_sent_event_in_openais_shape() {
        let completion = Completion::new(Uuid::nil(), 7, "dummy");
        let bytes = completion.chunk(text_delta("hi"), None, true);
        let text = String::from_utf8(bytes).unwrap();
        let json = text
            .strip_prefix("data: ")
            .and_then(|t| t.strip_suffix("\n\n"))
            .unwrap();
        let chunk: Value = serde_json::from_str(json).unwrap();
        assert_eq!(chunk["id"], "chatcmpl-00000000000000000000000000000000");
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["choices"][0]["delta"]["content"], "hi");
        assert_eq!(chunk["choices"][0]["finish_reason"], Value::Null);
        assert!(chunk["usage"].is_null() && chunk.get("usage").is_some());
        // OpenAI's schema types it a string: none is omitted, never null.
        assert!(chunk.get("system_fingerprint").is_none());
    }

    #[test]
    fn usage_adds_up() {
        let completion = Completion::new(Uuid::nil(), 7, "dummy");
        let usage = Usage {
            input_tokens: 3,
            output_tokens: 2,
            ..Default::default()
        };
        let whole = completion.whole("AI response", Finish::Stop, usage);
        assert_eq!(whole["usage"]["total_tokens"], 5);
        assert_eq!(whole["choices"][0]["finish_reason"], "stop");
        assert!(whole.get("system_fingerprint").is_none());
    }
}
