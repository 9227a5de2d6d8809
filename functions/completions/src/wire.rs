//! What goes back to an OpenAI client: a `chat.completion`, or the
//! `chat.completion.chunk`s of a stream as server-sent events.

use chat_core::billing::ToolDelta;
use chat_core::pricing::Usage;
use chat_core::responder::{Finish, ToolCall};
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
    /// A reply that only calls tools has `content: null`, as OpenAI's.
    pub fn whole(
        &self,
        text: &str,
        tool_calls: &[ToolCall],
        finish: Finish,
        usage: Usage,
    ) -> Value {
        let mut message = json!({"role": "assistant", "content": text, "refusal": null});
        if !tool_calls.is_empty() {
            if text.is_empty() {
                message["content"] = Value::Null;
            }
            message["tool_calls"] = tool_calls
                .iter()
                .map(|call| {
                    json!({
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": call.arguments},
                    })
                })
                .collect();
        }
        json!({
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{
                "index": 0,
                "message": message,
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

/// A piece of the `index`-th tool call: its start (id, name and empty
/// arguments), or more of its arguments, as OpenAI streams them.
pub fn tool_delta(index: usize, delta: ToolDelta<'_>) -> Value {
    let call = match delta {
        ToolDelta::Start { id, name } => json!({
            "index": index,
            "id": id,
            "type": "function",
            "function": {"name": name, "arguments": ""},
        }),
        ToolDelta::Arguments(arguments) => json!({
            "index": index,
            "function": {"arguments": arguments},
        }),
    };
    json!({ "tool_calls": [call] })
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
        let whole = completion.whole("AI response", &[], Finish::Stop, usage);
        assert_eq!(whole["usage"]["total_tokens"], 5);
        assert_eq!(whole["choices"][0]["finish_reason"], "stop");
        assert!(whole.get("system_fingerprint").is_none());
        assert!(whole["choices"][0]["message"].get("tool_calls").is_none());
    }

    #[test]
    fn tool_calls_come_whole_with_null_content_and_streamed_as_indexed_deltas() {
        let completion = Completion::new(Uuid::nil(), 7, "dummy");
        let call = ToolCall {
            id: "call_1".into(),
            name: "weather".into(),
            arguments: "{\"city\":\"Oslo\"}".into(),
        };
        let whole = completion.whole("", &[call], Finish::ToolCalls, Usage::default());
        let message = &whole["choices"][0]["message"];
        assert!(message["content"].is_null());
        assert_eq!(message["tool_calls"][0]["function"]["name"], "weather");
        assert_eq!(message["tool_calls"][0]["type"], "function");
        assert_eq!(whole["choices"][0]["finish_reason"], "tool_calls");
        let start = tool_delta(
            1,
            ToolDelta::Start {
                id: "call_1",
                name: "weather",
            },
        );
        assert_eq!(start["tool_calls"][0]["index"], 1);
        assert_eq!(start["tool_calls"][0]["function"]["arguments"], "");
        let more = tool_delta(1, ToolDelta::Arguments("{}"));
        assert!(more["tool_calls"][0].get("id").is_none());
        assert_eq!(more["tool_calls"][0]["function"]["arguments"], "{}");
    }
}
