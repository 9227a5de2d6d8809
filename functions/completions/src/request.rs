//! OpenAI's Chat Completions request, read into what the model is asked.
//!
//! Every field OpenAI defines is either honoured, or accepted because it
//! cannot change the answer (`user`, `metadata`, `store`, ...), or refused
//! with a 400 that names it: a client must never get a different answer
//! than it asked for without being told. Unknown fields are refused, as
//! OpenAI refuses them.

use chat_core::domain::ChatMessage;
use chat_core::domain::MESSAGE_MAX_CHARS;
use chat_core::http::whole_number;
use chat_core::responder::{Conversation, Role, Sampling, Turn};
use chat_core::ApiError;
use serde_json::{Map, Value};

/// At most this many messages in one request.
pub const MAX_MESSAGES: usize = 100;
/// At most this many characters across all messages: what one hold may
/// have to cover, and a bound on what one request sends the model.
pub const MAX_CONVERSATION_CHARS: usize = 32_000;
/// OpenAI's own limit on stop sequences.
pub const MAX_STOP_SEQUENCES: usize = 4;
/// The request body's limit: the conversation's characters, escaped.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// A request, validated.
#[derive(Debug)]
pub struct CompletionRequest {
    pub model: String,
    pub conversation: Conversation,
    pub sampling: Sampling,
    /// The last user message, kept as the saved chat's `message`.
    pub last_message: ChatMessage,
    pub stream: bool,
    /// `stream_options.include_usage`: a last chunk with the usage.
    pub include_usage: bool,
}

/// Fields that cannot change the answer: accepted and not used.
const IGNORED: &[&str] = &[
    "user",
    "metadata",
    "store",
    "service_tier",
    "parallel_tool_calls",
    "safety_identifier",
    "prompt_cache_key",
];

/// Features this API does not have: refused unless absent, null or their
/// neutral value (see [`neutral`]).
const UNSUPPORTED: &[&str] = &[
    "tools",
    "tool_choice",
    "functions",
    "function_call",
    "response_format",
    "logprobs",
    "top_logprobs",
    "logit_bias",
    "frequency_penalty",
    "presence_penalty",
    "seed",
    "audio",
    "modalities",
    "prediction",
    "web_search_options",
    "reasoning_effort",
    "verbosity",
];

/// Reads the request body (already parsed as a JSON object), against the
/// largest `max_tokens` the served model allows.
pub fn parse(body: Map<String, Value>, max_tokens_cap: u32) -> Result<CompletionRequest, ApiError> {
    for (name, value) in &body {
        let name_ = name.as_str();
        let known = [HONOURED, IGNORED, UNSUPPORTED]
            .iter()
            .any(|list| list.contains(&name_));
        if !known {
            return Err(ApiError::invalid_field(
                name.clone(),
                format!("unrecognized request argument supplied: {name}"),
            ));
        }
        if UNSUPPORTED.contains(&name.as_str()) && !neutral(name, value) {
            return Err(ApiError::invalid_field(
                name.clone(),
                format!("{name} is not supported by this API"),
            ));
        }
    }
    let model = match body.get("model") {
        Some(Value::String(model)) if !model.trim().is_empty() => model.clone(),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err(ApiError::invalid_field("model", "is required"))
        }
        Some(_) => return Err(ApiError::invalid_field("model", "must be a string")),
    };
    if let Some(n) = present(&body, "n") {
        if whole_number(n) != Some(1) {
            return Err(ApiError::invalid_field("n", "only n = 1 is supported"));
        }
    }
    let (conversation, last_message) = conversation(body.get("messages"))?;
    let stream = match present(&body, "stream") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(ApiError::invalid_field("stream", "must be a boolean")),
    };
    let include_usage = match present(&body, "stream_options") {
        None => false,
        Some(_) if !stream => {
            return Err(ApiError::invalid_field(
                "stream_options",
                "is only allowed when stream is true",
            ))
        }
        Some(Value::Object(options)) => stream_options(options)?,
        Some(_) => {
            return Err(ApiError::invalid_field(
                "stream_options",
                "must be an object",
            ))
        }
    };
    let sampling = Sampling {
        max_tokens: max_tokens(&body, max_tokens_cap)?,
        temperature: number_in(&body, "temperature", 0.0, 2.0)?,
        top_p: number_in(&body, "top_p", 0.0, 1.0)?,
        stop: stop(present(&body, "stop"))?,
    };
    Ok(CompletionRequest {
        model,
        conversation,
        sampling,
        last_message,
        stream,
        include_usage,
    })
}

/// Fields this API honours.
const HONOURED: &[&str] = &[
    "model",
    "messages",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "stop",
    "stream",
    "stream_options",
    "n",
];

/// Whether an unsupported field asks for nothing beyond what we do: absent
/// in effect (null, false, 0, empty), or the plain text we answer with.
fn neutral(name: &str, value: &Value) -> bool {
    match value {
        Value::Null | Value::Bool(false) => true,
        Value::Number(n) => n.as_f64() == Some(0.0) && name.ends_with("_penalty"),
        Value::Array(a) => a.is_empty() || (name == "modalities" && a == &[Value::from("text")]),
        Value::Object(o) => {
            o.is_empty()
                || (name == "response_format"
                    && o.len() == 1
                    && o.get("type") == Some(&Value::from("text")))
        }
        _ => false,
    }
}

/// A field's value unless absent or null: OpenAI treats null as unset.
fn present<'a>(body: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    body.get(name).filter(|v| !v.is_null())
}

fn stream_options(options: &Map<String, Value>) -> Result<bool, ApiError> {
    let mut include = false;
    for (name, value) in options {
        match (name.as_str(), value) {
            ("include_usage", Value::Bool(b)) => include = *b,
            ("include_usage", Value::Null) => {}
            ("include_obfuscation", Value::Bool(_) | Value::Null) => {}
            ("include_usage" | "include_obfuscation", _) => {
                return Err(ApiError::invalid_field(
                    "stream_options",
                    format!("{name} must be a boolean"),
                ))
            }
            _ => {
                return Err(ApiError::invalid_field(
                    "stream_options",
                    format!("unrecognized option {name}"),
                ))
            }
        }
    }
    Ok(include)
}

/// `max_completion_tokens` (OpenAI's current name) or `max_tokens` (the
/// older one), 1 up to the model's cap; absent means the cap.
fn max_tokens(body: &Map<String, Value>, cap: u32) -> Result<u32, ApiError> {
    let (field, value) = match (
        present(body, "max_completion_tokens"),
        present(body, "max_tokens"),
    ) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid_field(
                "max_tokens",
                "set max_tokens or max_completion_tokens, not both",
            ))
        }
        (Some(v), None) => ("max_completion_tokens", v),
        (None, Some(v)) => ("max_tokens", v),
        (None, None) => return Ok(cap),
    };
    match whole_number(value) {
        Some(n) if (1..=u64::from(cap)).contains(&n) => Ok(n as u32),
        _ => Err(ApiError::invalid_field(
            field,
            format!("must be a whole number from 1 to {cap}, the most this model writes"),
        )),
    }
}

fn number_in(
    body: &Map<String, Value>,
    field: &'static str,
    min: f64,
    max: f64,
) -> Result<Option<f32>, ApiError> {
    let Some(value) = present(body, field) else {
        return Ok(None);
    };
    match value.as_f64() {
        Some(x) if (min..=max).contains(&x) => Ok(Some(x as f32)),
        _ => Err(ApiError::invalid_field(
            field,
            format!("must be a number from {min} to {max}"),
        )),
    }
}

fn stop(value: Option<&Value>) -> Result<Vec<String>, ApiError> {
    let sequences = match value {
        None => return Ok(Vec::new()),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) if items.len() <= MAX_STOP_SEQUENCES => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| ApiError::invalid_field("stop", "must be strings"))?,
        Some(_) => {
            return Err(ApiError::invalid_field(
                "stop",
                format!("must be a string or up to {MAX_STOP_SEQUENCES} strings"),
            ))
        }
    };
    if sequences.iter().any(String::is_empty) {
        return Err(ApiError::invalid_field("stop", "may not be empty strings"));
    }
    Ok(sequences)
}

/// The messages as the model takes them: system and developer messages as
/// system prompts, in order; the others as turns, consecutive messages of
/// one role joined into one turn (Bedrock requires turns to alternate).
fn conversation(messages: Option<&Value>) -> Result<(Conversation, ChatMessage), ApiError> {
    let messages = match messages {
        Some(Value::Array(messages)) => messages,
        None | Some(Value::Null) => return Err(ApiError::invalid_field("messages", "is required")),
        Some(_) => return Err(ApiError::invalid_field("messages", "must be an array")),
    };
    if messages.is_empty() || messages.len() > MAX_MESSAGES {
        return Err(ApiError::invalid_field(
            "messages",
            format!("must hold 1 to {MAX_MESSAGES} messages"),
        ));
    }
    let mut conversation = Conversation::default();
    let mut last_user = None;
    let mut chars = 0;
    for (i, message) in messages.iter().enumerate() {
        let (role, text) = message_of(i, message)?;
        chars += text.chars().count();
        match role {
            None => conversation.system.push(text),
            Some(role) => {
                if role == Role::User {
                    last_user = Some(text.clone());
                }
                match conversation.turns.last_mut() {
                    Some(turn) if turn.role == role => {
                        turn.text.push_str("\n\n");
                        turn.text.push_str(&text);
                    }
                    _ => conversation.turns.push(Turn { role, text }),
                }
            }
        }
    }
    if chars > MAX_CONVERSATION_CHARS {
        return Err(ApiError::invalid_field(
            "messages",
            format!("may hold at most {MAX_CONVERSATION_CHARS} characters in all"),
        ));
    }
    match (conversation.turns.first(), conversation.turns.last()) {
        (Some(first), Some(last)) if first.role == Role::User && last.role == Role::User => {}
        _ => return Err(ApiError::invalid_field(
            "messages",
            "the conversation must start and end with a user message (after any system messages)",
        )),
    }
    let last = last_user.expect("a conversation that ends with a user turn has a user message");
    // Each message is at most MESSAGE_MAX_CHARS and not blank, so this
    // holds; the error is for the impossible case, not a panic.
    let last = ChatMessage::parse(last).map_err(|why| ApiError::invalid_field("messages", why))?;
    Ok((conversation, last))
}

/// One message: its role (`None` for a system prompt) and its text.
fn message_of(i: usize, message: &Value) -> Result<(Option<Role>, String), ApiError> {
    let at = |why: String| ApiError::invalid_field("messages", format!("messages[{i}]: {why}"));
    let Value::Object(message) = message else {
        return Err(at("must be an object".into()));
    };
    for (name, value) in message {
        match name.as_str() {
            "role" | "content" | "name" => {}
            // An assistant's earlier refusal or empty tool list asks nothing.
            "refusal" | "tool_calls" | "function_call" | "audio"
                if value.is_null() || value == &Value::Array(Vec::new()) => {}
            "tool_calls" | "function_call" | "audio" => {
                return Err(at(format!("{name} is not supported by this API")))
            }
            _ => return Err(at(format!("unrecognized field {name}"))),
        }
    }
    let role = match message.get("role").and_then(Value::as_str) {
        Some("system" | "developer") => None,
        Some("user") => Some(Role::User),
        Some("assistant") => Some(Role::Assistant),
        Some(other @ ("tool" | "function")) => {
            return Err(at(format!("the role {other} is not supported by this API")))
        }
        Some(other) => return Err(at(format!("unknown role {other}"))),
        None => return Err(at("role is required and must be a string".into())),
    };
    let text = match message.get("content") {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => text_of_parts(parts).map_err(at)?,
        None | Some(Value::Null) => return Err(at("content is required".into())),
        Some(_) => {
            return Err(at(
                "content must be a string or an array of text parts".into()
            ))
        }
    };
    if text.trim().is_empty() {
        return Err(at("content may not be blank".into()));
    }
    if text.chars().count() > MESSAGE_MAX_CHARS {
        return Err(at(format!(
            "content may hold at most {MESSAGE_MAX_CHARS} characters"
        )));
    }
    Ok((role, text))
}

/// Text parts joined, as OpenAI joins them for a model; any other part
/// (an image, audio, a file) is refused.
fn text_of_parts(parts: &[Value]) -> Result<String, String> {
    if parts.is_empty() {
        return Err("content may not be an empty array".into());
    }
    let mut text = String::new();
    for part in parts {
        match (part.get("type").and_then(Value::as_str), part.get("text")) {
            (Some("text"), Some(Value::String(t)))
                if part.as_object().is_some_and(|o| o.len() == 2) =>
            {
                text.push_str(t)
            }
            (Some("text"), _) => {
                return Err("a text part is {\"type\": \"text\", \"text\": string}".into())
            }
            (Some(other), _) => {
                return Err(format!(
                    "content parts of type {other} are not supported by this API"
                ))
            }
            (None, _) => return Err("each content part needs a type".into()),
        }
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse_json(body: Value) -> Result<CompletionRequest, ApiError> {
        let Value::Object(map) = body else { panic!() };
        parse(map, 1024)
    }

    fn field_of(result: Result<CompletionRequest, ApiError>) -> String {
        match result.unwrap_err() {
            ApiError::InvalidField { field, reason } => format!("{field}: {reason}"),
            other => panic!("{other:?}"),
        }
    }

    fn user(text: &str) -> Value {
        json!({"role": "user", "content": text})
    }

    #[test]
    fn a_whole_conversation_reaches_the_model() {
        let request = parse_json(json!({
            "model": "dummy",
            "messages": [
                {"role": "system", "content": "Be brief."},
                user("Hi"),
                {"role": "assistant", "content": [{"type": "text", "text": "Hello"}]},
                {"role": "user", "content": [{"type": "text", "text": "Bye"}, {"type": "text", "text": " now"}]},
                user("Really"),
            ],
            "max_completion_tokens": 50,
            "temperature": 0.5,
            "top_p": 1,
            "stop": "END",
            "stream": true,
            "stream_options": {"include_usage": true},
            "user": "someone",
            "n": 1,
            "tools": [],
            "frequency_penalty": 0,
        }))
        .unwrap();
        assert_eq!(request.conversation.system, vec!["Be brief."]);
        let turns: Vec<_> = request
            .conversation
            .turns
            .iter()
            .map(|t| (t.role, t.text.as_str()))
            .collect();
        assert_eq!(
            turns,
            vec![
                (Role::User, "Hi"),
                (Role::Assistant, "Hello"),
                (Role::User, "Bye now\n\nReally"),
            ]
        );
        assert_eq!(request.last_message.as_str(), "Really");
        assert_eq!(request.sampling.max_tokens, 50);
        assert_eq!(request.sampling.temperature, Some(0.5));
        assert_eq!(request.sampling.stop, vec!["END"]);
        assert!(request.stream && request.include_usage);
    }

    #[test]
    fn max_tokens_defaults_to_the_cap_and_may_not_exceed_it() {
        let request = parse_json(json!({"model": "m", "messages": [user("x")]})).unwrap();
        assert_eq!(request.sampling.max_tokens, 1024);
        assert!(!request.stream);
        let request =
            parse_json(json!({"model": "m", "messages": [user("x")], "max_tokens": 5.0, "n": 1.0}))
                .unwrap();
        assert_eq!(request.sampling.max_tokens, 5);
        for body in [
            json!({"model": "m", "messages": [user("x")], "max_tokens": 1025}),
            json!({"model": "m", "messages": [user("x")], "max_tokens": 0}),
            json!({"model": "m", "messages": [user("x")], "max_tokens": 2.5}),
        ] {
            assert!(field_of(parse_json(body)).starts_with("max_tokens"));
        }
    }

    #[test]
    fn what_would_change_the_answer_is_refused_by_name() {
        for (extra, param) in [
            (json!({"n": 2}), "n"),
            (json!({"tools": [{"type": "function"}]}), "tools"),
            (json!({"temperature": 3}), "temperature"),
            (json!({"top_p": -0.1}), "top_p"),
            (json!({"logprobs": true}), "logprobs"),
            (json!({"presence_penalty": 0.5}), "presence_penalty"),
            (json!({"seed": 7}), "seed"),
            (
                json!({"response_format": {"type": "json_object"}}),
                "response_format",
            ),
            (json!({"stop": ["a", "b", "c", "d", "e"]}), "stop"),
            (
                json!({"stream_options": {"include_usage": true}}),
                "stream_options",
            ),
            (json!({"frobnicate": 1}), "frobnicate"),
            (
                json!({"max_tokens": 5, "max_completion_tokens": 5}),
                "max_tokens",
            ),
        ] {
            let mut body = json!({"model": "m", "messages": [user("x")]});
            body.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            let found = field_of(parse_json(body));
            assert!(found.starts_with(&format!("{param}:")), "{param}: {found}");
        }
    }

    #[test]
    fn bad_messages_are_refused_with_their_index() {
        for (messages, says) in [
            (json!([]), "1 to 100"),
            (json!("hi"), "array"),
            (
                json!([{"role": "assistant", "content": "x"}]),
                "start and end",
            ),
            (
                json!([user("x"), {"role": "assistant", "content": "y"}]),
                "start and end",
            ),
            (json!([{"role": "system", "content": "x"}]), "start and end"),
            (json!([user("  ")]), "messages[0]: content may not be blank"),
            (
                json!([{"role": "tool", "content": "x"}]),
                "messages[0]: the role tool",
            ),
            (json!([{"role": "wizard", "content": "x"}]), "unknown role"),
            (json!([{"content": "x"}]), "role is required"),
            (
                json!([user("a"), {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]),
                "messages[1]: content parts of type image_url",
            ),
            (
                json!([{"role": "user", "content": "x", "extra": 1}]),
                "unrecognized field extra",
            ),
            (json!([user(&"a".repeat(8001))]), "at most 8000"),
            (
                json!([
                    user(&"a".repeat(8000)),
                    user(&"a".repeat(8000)),
                    user(&"a".repeat(8000)),
                    user(&"a".repeat(8000)),
                    user("a")
                ]),
                "at most 32000",
            ),
        ] {
            let found = field_of(parse_json(json!({"model": "m", "messages": messages})));
            assert!(found.starts_with("messages:"), "{found}");
            assert!(found.contains(says), "{says}: {found}");
        }
    }

    #[test]
    fn a_missing_or_bad_model_is_named() {
        assert!(field_of(parse_json(json!({"messages": [user("x")]}))).starts_with("model:"));
        assert!(
            field_of(parse_json(json!({"model": 3, "messages": [user("x")]})))
                .starts_with("model:")
        );
    }
}
