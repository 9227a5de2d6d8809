//! OpenAI's Responses request, read into the Chat Completions request it
//! asks the same of, then checked by completions' own parser: one set of
//! rules (sizes, roles, images, sampling ranges) for what a model is sent.
//!
//! As on completions, every field is honoured, accepted because it cannot
//! change the answer, or refused with a 400 that names it. What needs
//! state kept by the server (`previous_response_id`, `conversation`,
//! `store: true`, `background`) and the built-in and function tools are
//! refused: docs/openai.md.

use chat_core::domain::MESSAGE_MAX_CHARS;
use chat_core::ApiError;
use completions::request::{self as chat, CompletionRequest};
use serde_json::{json, Map, Value};

/// A request, validated: what completions would be asked, and the
/// fields a `response` object echoes.
#[derive(Debug)]
pub struct ResponseRequest {
    pub completion: CompletionRequest,
    pub instructions: Option<String>,
    /// As asked: null when the model's cap applies.
    pub max_output_tokens: Option<u32>,
}

/// Fields this API honours.
const HONOURED: &[&str] = &[
    "model",
    "input",
    "instructions",
    "max_output_tokens",
    "temperature",
    "top_p",
    "stream",
    "stream_options",
];

/// Fields that cannot change the answer: accepted and not used.
const IGNORED: &[&str] = &[
    "user",
    "metadata",
    "service_tier",
    "safety_identifier",
    "prompt_cache_key",
    "parallel_tool_calls",
];

/// Features this API does not have: refused unless absent, null or the
/// value that asks for nothing (see [`neutral`]).
const UNSUPPORTED: &[&str] = &[
    "previous_response_id",
    "conversation",
    "store",
    "background",
    "tools",
    "tool_choice",
    "max_tool_calls",
    "prompt",
    "include",
    "reasoning",
    "text",
    "truncation",
    "top_logprobs",
];

/// Reads the body (a JSON object) against the largest `max_output_tokens`
/// the served model allows.
pub fn parse(body: Map<String, Value>, cap: u32) -> Result<ResponseRequest, ApiError> {
    for (name, value) in &body {
        let known = [HONOURED, IGNORED, UNSUPPORTED]
            .iter()
            .any(|list| list.contains(&name.as_str()));
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
    let instructions = match present(&body, "instructions") {
        None => None,
        Some(Value::String(text)) if text.chars().count() > MESSAGE_MAX_CHARS => {
            return Err(ApiError::invalid_field(
                "instructions",
                format!("may hold at most {MESSAGE_MAX_CHARS} characters"),
            ))
        }
        Some(Value::String(text)) if !text.trim().is_empty() => Some(text.clone()),
        Some(Value::String(_)) => None,
        Some(_) => return Err(ApiError::invalid_field("instructions", "must be a string")),
    };
    let offset = usize::from(instructions.is_some());
    let mut messages = Vec::new();
    if let Some(text) = &instructions {
        messages.push(json!({"role": "system", "content": text}));
    }
    messages.extend(input(present(&body, "input"))?);
    let mut asked = Map::new();
    asked.insert("messages".into(), Value::Array(messages));
    for (from, to) in [
        ("model", "model"),
        ("max_output_tokens", "max_completion_tokens"),
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("stream", "stream"),
    ] {
        if let Some(value) = body.get(from) {
            asked.insert(to.into(), value.clone());
        }
    }
    // Only `include_obfuscation`, which changes nothing here, is known.
    if let Some(options) = present(&body, "stream_options") {
        let Value::Object(options) = options else {
            return Err(ApiError::invalid_field(
                "stream_options",
                "must be an object",
            ));
        };
        for (name, value) in options {
            if name != "include_obfuscation" {
                return Err(ApiError::invalid_field(
                    "stream_options",
                    format!("unrecognized option {name}"),
                ));
            }
            if !(value.is_boolean() || value.is_null()) {
                return Err(ApiError::invalid_field(
                    "stream_options",
                    "include_obfuscation must be a boolean",
                ));
            }
        }
    }
    let max_output_tokens = present(&body, "max_output_tokens").map(|_| ());
    let completion = chat::parse(asked, cap).map_err(|e| in_our_names(e, offset))?;
    Ok(ResponseRequest {
        max_output_tokens: max_output_tokens.map(|()| completion.sampling.max_tokens),
        completion,
        instructions,
    })
}

/// `input` as Chat Completions messages: a string is one user message; a
/// list holds messages (`{"role", "content"}`, `type: "message"` or not),
/// whose content is a string or input parts. Other items (function calls
/// and their outputs, references to stored items) are refused.
fn input(value: Option<&Value>) -> Result<Vec<Value>, ApiError> {
    let items = match value {
        Some(Value::String(text)) => return Ok(vec![json!({"role": "user", "content": text})]),
        Some(Value::Array(items)) => items,
        None => return Err(ApiError::invalid_field("input", "is required")),
        Some(_) => {
            return Err(ApiError::invalid_field(
                "input",
                "must be a string or an array of messages",
            ))
        }
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            message_of(item)
                .map_err(|why| ApiError::invalid_field("input", format!("input[{i}]: {why}")))
        })
        .collect()
}

fn message_of(item: &Value) -> Result<Value, String> {
    let Value::Object(item) = item else {
        return Err("must be an object".into());
    };
    match item.get("type") {
        None | Some(Value::Null) => {}
        Some(Value::String(kind)) if kind == "message" => {}
        Some(Value::String(other)) => {
            return Err(format!(
                "items of type {other} are not supported by this API"
            ))
        }
        Some(_) => return Err("type must be a string".into()),
    }
    let role = match item.get("role").and_then(Value::as_str) {
        Some(role @ ("user" | "system" | "developer" | "assistant")) => role,
        Some(other) => return Err(format!("unknown role {other}")),
        None => return Err("role is required and must be a string".into()),
    };
    for (name, value) in item {
        match name.as_str() {
            "type" | "role" | "content" => {}
            // An output message given back carries its id and status.
            "id" | "status" if role == "assistant" && (value.is_string() || value.is_null()) => {}
            "id" | "status" if role == "assistant" => {
                return Err(format!("{name} must be a string"))
            }
            _ => return Err(format!("unrecognized field {name}")),
        }
    }
    let content = match item.get("content") {
        Some(Value::String(text)) => Value::String(text.clone()),
        Some(Value::Array(parts)) if role == "assistant" => Value::String(output_text(parts)?),
        Some(Value::Array(parts)) => {
            Value::Array(parts.iter().map(input_part).collect::<Result<_, _>>()?)
        }
        None | Some(Value::Null) => return Err("content is required".into()),
        Some(_) => return Err("content must be a string or an array of parts".into()),
    };
    Ok(json!({"role": role, "content": content}))
}

/// A user or system part as its Chat Completions twin: `input_text` as a
/// text part, `input_image` with a `data:` URL as an image part (checked
/// there, remote URLs refused).
fn input_part(part: &Value) -> Result<Value, String> {
    let fields = part.as_object().map_or(0, Map::len);
    match (part.get("type").and_then(Value::as_str), part.get("text")) {
        (Some("input_text"), Some(Value::String(text))) if fields == 2 => {
            Ok(json!({"type": "text", "text": text}))
        }
        (Some("input_text"), _) => {
            Err("an input_text part is {\"type\": \"input_text\", \"text\": string}".into())
        }
        (Some("input_image"), _) => {
            let url = part.get("image_url").and_then(Value::as_str);
            let detail = part.get("detail").filter(|d| !d.is_null());
            let known = part.as_object().is_some_and(|o| {
                o.keys()
                    .all(|k| matches!(k.as_str(), "type" | "image_url" | "detail"))
            });
            match (url, known) {
                (Some(url), true) => {
                    let mut image = json!({"url": url});
                    if let Some(detail) = detail {
                        image["detail"] = detail.clone();
                    }
                    Ok(json!({"type": "image_url", "image_url": image}))
                }
                _ => Err("an input_image part is {\"type\": \"input_image\", \"image_url\": a data: URL}".into()),
            }
        }
        (Some(other), _) => Err(format!(
            "content parts of type {other} are not supported by this API"
        )),
        (None, _) => Err("each content part needs a type".into()),
    }
}

/// An assistant message given back: its `output_text` parts' text (the
/// annotations and log probabilities we send with them are let be).
fn output_text(parts: &[Value]) -> Result<String, String> {
    parts
        .iter()
        .map(|part| {
            let kind = part.get("type").and_then(Value::as_str);
            let known = part.as_object().is_some_and(|o| {
                o.iter().all(|(k, v)| match k.as_str() {
                    "type" | "text" => true,
                    "annotations" | "logprobs" => kind == Some("output_text") && v.is_array(),
                    _ => false,
                })
            });
            match (kind, part.get("text")) {
                (Some("output_text" | "input_text"), Some(Value::String(text))) if known => {
                    Ok(text.as_str())
                }
                _ => Err("an assistant message's parts are output_text parts: {\"type\", \"text\", \"annotations\"}".to_owned()),
            }
        })
        .collect::<Result<Vec<_>, _>>()
        .map(|texts| texts.concat())
}

/// completions' refusal in this request's names: its `messages[i]` is
/// `input[i]` (after the instructions' message, if any), its
/// `max_completion_tokens` is `max_output_tokens`.
fn in_our_names(error: ApiError, offset: usize) -> ApiError {
    let ApiError::InvalidField { field, reason } = error else {
        return error;
    };
    match field.as_ref() {
        "messages" => {
            let reason = match reason
                .strip_prefix("messages[")
                .and_then(|rest| rest.split_once(']'))
                .and_then(|(i, rest)| Some((i.parse::<usize>().ok()?, rest)))
            {
                Some((i, rest)) if i >= offset => format!("input[{}]{rest}", i - offset),
                Some((_, rest)) => {
                    return ApiError::invalid_field("instructions", format!("instructions{rest}"))
                }
                None => reason,
            };
            ApiError::invalid_field("input", reason)
        }
        "max_completion_tokens" => ApiError::invalid_field(
            "max_output_tokens",
            reason.replace("max_completion_tokens", "max_output_tokens"),
        ),
        _ => ApiError::InvalidField { field, reason },
    }
}

/// A value that asks for nothing this API lacks, field by field as
/// openapi.yaml's `ResponseRequest` states them: null, and `false`, `[]`,
/// `{}`, the plain text format, no truncation where each means "none".
fn neutral(name: &str, value: &Value) -> bool {
    if value.is_null() {
        return true;
    }
    match name {
        "store" | "background" => value == &Value::Bool(false),
        "tools" | "include" => value.as_array().is_some_and(Vec::is_empty),
        "reasoning" => value.as_object().is_some_and(Map::is_empty),
        "text" => {
            value.as_object().is_some_and(Map::is_empty)
                || value == &json!({"format": {"type": "text"}})
        }
        "truncation" => value == "disabled",
        "tool_choice" => value == "auto" || value == "none",
        _ => false,
    }
}

/// A field's value unless absent or null: OpenAI treats null as unset.
fn present<'a>(body: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    body.get(name).filter(|v| !v.is_null())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(body: Value) -> Result<ResponseRequest, ApiError> {
        let Value::Object(body) = body else { panic!() };
        parse(body, 100)
    }

    fn refused_field(body: Value) -> String {
        match parsed(body) {
            Err(ApiError::InvalidField { field, .. }) => field.into_owned(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_string_input_is_one_user_turn_under_the_instructions() {
        let request =
            parsed(json!({"model": "dummy", "input": "Hi", "instructions": "Be brief."})).unwrap();
        let conversation = &request.completion.conversation;
        assert_eq!(conversation.system, vec!["Be brief.".to_owned()]);
        assert_eq!(conversation.turns.len(), 1);
        assert_eq!(conversation.turns[0].text, "Hi");
        assert_eq!(request.completion.sampling.max_tokens, 100);
        assert_eq!(request.max_output_tokens, None);
    }

    #[test]
    fn messages_with_input_text_parts_and_an_earlier_answer_make_a_conversation() {
        let request = parsed(json!({
            "model": "dummy",
            "max_output_tokens": 20,
            "input": [
                {"role": "developer", "content": "Rhyme."},
                {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
                {"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
                 "content": [{"type": "output_text", "text": "Hello", "annotations": []}]},
                {"role": "user", "content": "Again"},
            ],
        }))
        .unwrap();
        let conversation = &request.completion.conversation;
        assert_eq!(conversation.system, vec!["Rhyme.".to_owned()]);
        assert_eq!(conversation.turns.len(), 3);
        assert_eq!(conversation.turns[1].text, "Hello");
        assert_eq!(request.max_output_tokens, Some(20));
        assert_eq!(request.completion.sampling.max_tokens, 20);
    }

    #[test]
    fn state_kept_by_the_server_and_tools_are_refused_by_name() {
        for (name, value) in [
            ("previous_response_id", json!("resp_1")),
            ("store", json!(true)),
            ("background", json!(true)),
            ("tools", json!([{"type": "web_search"}])),
            ("conversation", json!("conv_1")),
            // Only null asks for no earlier response; only false, [] and
            // {} where openapi.yaml says they mean "none".
            ("previous_response_id", json!(false)),
            ("top_logprobs", json!({})),
            ("store", json!([])),
            ("stream_options", json!({"include_obfuscation": 1})),
            ("instructions", json!(" ".repeat(MESSAGE_MAX_CHARS + 1))),
        ] {
            let mut body = json!({"model": "dummy", "input": "Hi"});
            body[name] = value;
            assert_eq!(refused_field(body), name);
        }
        let accepted = json!({"model": "dummy", "input": "Hi", "store": false, "tools": [],
            "text": {"format": {"type": "text"}}, "truncation": "disabled"});
        assert!(parsed(accepted).is_ok());
    }

    #[test]
    fn completions_refusals_come_back_in_this_requests_names() {
        let blank = json!({"model": "dummy", "instructions": "x", "input": [{"role": "user", "content": " "}]});
        match parsed(blank) {
            Err(ApiError::InvalidField { field, reason }) => {
                assert_eq!(field, "input");
                assert!(reason.starts_with("input[0]:"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        let too_many = json!({"model": "dummy", "input": "Hi", "max_output_tokens": 101});
        assert_eq!(refused_field(too_many), "max_output_tokens");
        let call = json!({"model": "dummy", "input": [{"type": "function_call_output", "call_id": "c", "output": "1"}]});
        assert_eq!(refused_field(call), "input");
        assert_eq!(
            refused_field(json!({"model": "dummy", "input": "Hi", "n": 2})),
            "n"
        );
        assert_eq!(refused_field(json!({"model": "dummy"})), "input");
    }
}
