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
use chat_core::responder::{
    Conversation, Image, Role, Sampling, Tool, ToolCall, ToolChoice, ToolResult, Turn,
};
use chat_core::ApiError;
use serde_json::{Map, Value};

use crate::images::{image_of_part, MAX_IMAGES};

/// At most this many messages in one request.
pub const MAX_MESSAGES: usize = 100;
/// At most this many characters across all messages: what one hold may
/// have to cover, and a bound on what one request sends the model.
pub const MAX_CONVERSATION_CHARS: usize = 32_000;
/// OpenAI's own limit on stop sequences.
pub const MAX_STOP_SEQUENCES: usize = 4;
/// The request body's limit: the conversation's characters, escaped, and
/// the tools' definitions.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// OpenAI's own limit on the tools of one request.
pub const MAX_TOOLS: usize = 128;

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
    // Converse has no switch for it: a model may still call several tools
    // at once, each answered in `tool_calls` (docs/openai.md).
    "parallel_tool_calls",
    "safety_identifier",
    "prompt_cache_key",
];

/// Features this API does not have: refused unless absent, null or their
/// neutral value (see [`neutral`]).
const UNSUPPORTED: &[&str] = &[
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
    let (mut conversation, last_message) = conversation(body.get("messages"))?;
    let tools = tools(present(&body, "tools"))?;
    if tools.is_empty() && conversation.turns.iter().any(has_tool_blocks) {
        return Err(ApiError::invalid_field(
            "tools",
            "the messages hold tool calls: give the tools they call",
        ));
    }
    match tool_choice(present(&body, "tool_choice"), &tools)? {
        Some(choice) => {
            conversation.tools = tools;
            conversation.tool_choice = choice;
        }
        // `"none"`: Converse cannot be told not to call offered tools, so
        // none are offered; a conversation that already holds tool calls
        // cannot be sent without them.
        None if conversation.turns.iter().any(has_tool_blocks) => {
            return Err(ApiError::invalid_field(
                "tool_choice",
                "none is not supported once the messages hold tool calls",
            ))
        }
        None => {}
    }
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
    "tools",
    "tool_choice",
];

fn has_tool_blocks(turn: &Turn) -> bool {
    !turn.tool_calls.is_empty() || !turn.tool_results.is_empty()
}

/// OpenAI's function tools: `{"type": "function", "function": {"name",
/// "description", "parameters", "strict"}}`, names unique.
fn tools(value: Option<&Value>) -> Result<Vec<Tool>, ApiError> {
    let items = match value {
        None => return Ok(Vec::new()),
        Some(Value::Array(items)) if items.len() <= MAX_TOOLS => items,
        Some(_) => {
            return Err(ApiError::invalid_field(
                "tools",
                format!("must be an array of at most {MAX_TOOLS} tools"),
            ))
        }
    };
    let mut tools: Vec<Tool> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = |why: &str| ApiError::invalid_field("tools", format!("tools[{i}]: {why}"));
        let Value::Object(item) = item else {
            return Err(at("must be an object"));
        };
        if item.get("type").and_then(Value::as_str) != Some("function") {
            return Err(at("only tools of type function are supported by this API"));
        }
        if let Some(other) = item
            .keys()
            .find(|k| !["type", "function"].contains(&k.as_str()))
        {
            return Err(at(&format!("unrecognized field {other}")));
        }
        let Some(Value::Object(function)) = item.get("function") else {
            return Err(at("function must be an object"));
        };
        for (name, value) in function {
            match (name.as_str(), value) {
                ("name", _) => {}
                ("description", Value::String(_) | Value::Null) => {}
                ("parameters", Value::Object(_) | Value::Null) => {}
                ("strict", Value::Bool(_) | Value::Null) => {}
                ("description" | "parameters" | "strict", _) => {
                    return Err(at(&format!("function.{name} has the wrong type")))
                }
                _ => return Err(at(&format!("unrecognized field function.{name}"))),
            }
        }
        let name = function_name(function.get("name")).map_err(|why| at(&why))?;
        if tools.iter().any(|t| t.name == name) {
            return Err(at(&format!("the name {name} is given twice")));
        }
        tools.push(Tool {
            name,
            description: function
                .get("description")
                .and_then(Value::as_str)
                .filter(|d| !d.is_empty())
                .map(str::to_owned),
            // No parameters: a function of none, as OpenAI reads it.
            parameters: present(function, "parameters")
                .cloned()
                .unwrap_or_else(|| serde_json::json!({"type": "object", "properties": {}})),
        });
    }
    Ok(tools)
}

/// A function's name as OpenAI (and Converse) allow it: 1 to 64 of
/// `a-z A-Z 0-9 _ -`.
fn function_name(value: Option<&Value>) -> Result<String, String> {
    match value {
        Some(Value::String(name))
            if (1..=64).contains(&name.len())
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') =>
        {
            Ok(name.clone())
        }
        _ => Err("function.name must be 1 to 64 letters, digits, _ or -".into()),
    }
}

/// The choice among `tools`; `None` for `"none"` or for no tools at all.
fn tool_choice(value: Option<&Value>, tools: &[Tool]) -> Result<Option<ToolChoice>, ApiError> {
    let bad = |why: &str| ApiError::invalid_field("tool_choice", why.to_owned());
    // Without tools, only a choice that asks for none makes sense.
    if tools.is_empty() {
        return match value.map(|v| v.as_str()) {
            None | Some(Some("none" | "auto")) => Ok(None),
            Some(Some("required")) | Some(None) => {
                Err(bad("may only be none or auto when no tools are given"))
            }
            Some(Some(_)) => Err(bad("must be none, auto, required or a function")),
        };
    }
    match value {
        None => Ok(Some(ToolChoice::Auto)),
        Some(Value::String(s)) => match s.as_str() {
            "auto" => Ok(Some(ToolChoice::Auto)),
            "required" => Ok(Some(ToolChoice::Required)),
            "none" => Ok(None),
            _ => Err(bad("must be none, auto, required or a function")),
        },
        Some(Value::Object(choice)) => {
            let name = match (
                choice.get("type").and_then(Value::as_str),
                choice.get("function"),
            ) {
                (Some("function"), Some(Value::Object(f))) if choice.len() == 2 && f.len() == 1 => {
                    f.get("name").and_then(Value::as_str)
                }
                _ => None,
            };
            match name {
                Some(name) if tools.iter().any(|t| t.name == name) => {
                    Ok(Some(ToolChoice::Named(name.to_owned())))
                }
                Some(name) => Err(bad(&format!("names {name}, which is not among the tools"))),
                None => Err(bad(
                    "must be {\"type\": \"function\", \"function\": {\"name\": string}}",
                )),
            }
        }
        Some(_) => Err(bad("must be a string or an object")),
    }
}

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
/// A `tool` message is a user turn's tool result, as Converse has it; an
/// assistant message may call tools.
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
    let mut chars = 0;
    let mut called: Vec<String> = Vec::new();
    // The last user or tool message, as sent (not joined with others).
    let mut last_said = None;
    for (i, message) in messages.iter().enumerate() {
        let at = |why: String| ApiError::invalid_field("messages", format!("messages[{i}]: {why}"));
        let message = message_of(i, message)?;
        chars += message.chars();
        let turn = match message {
            Message::System(text) => {
                conversation.system.push(text);
                continue;
            }
            Message::Turn(turn) => turn,
        };
        if turn.role == Role::User {
            last_said = Some(turn.clone());
        }
        for call in &turn.tool_calls {
            called.push(call.id.clone());
        }
        for result in &turn.tool_results {
            if !called.contains(&result.call_id) {
                return Err(at(format!(
                    "tool_call_id {} answers no earlier tool call",
                    result.call_id
                )));
            }
        }
        match conversation.turns.last_mut() {
            Some(last) if last.role == turn.role => {
                if !last.text.is_empty() && !turn.text.is_empty() {
                    last.text.push_str("\n\n");
                }
                last.text.push_str(&turn.text);
                last.tool_calls.extend(turn.tool_calls);
                last.tool_results.extend(turn.tool_results);
                last.images.extend(turn.images);
            }
            _ => conversation.turns.push(turn),
        }
    }
    if chars > MAX_CONVERSATION_CHARS {
        return Err(ApiError::invalid_field(
            "messages",
            format!("may hold at most {MAX_CONVERSATION_CHARS} characters in all"),
        ));
    }
    if conversation.images() > MAX_IMAGES {
        return Err(ApiError::invalid_field(
            "messages",
            format!("may hold at most {MAX_IMAGES} images in all"),
        ));
    }
    let last = match (conversation.turns.first(), conversation.turns.last()) {
        (Some(first), Some(last)) if first.role == Role::User && last.role == Role::User => last,
        _ => return Err(ApiError::invalid_field(
            "messages",
            "the conversation must start and end with a user or tool message (after any system messages)",
        )),
    };
    let said = last_said.unwrap_or_else(|| last.clone());
    let message = ChatMessage::parse(saved_message(&said))
        .map_err(|why| ApiError::invalid_field("messages", why))?;
    Ok((conversation, message))
}

/// What the chat is saved as: the last user message's text or, for a
/// tool message, its result (or, all blank, which calls they
/// answer), within a chat message's size.
fn saved_message(turn: &Turn) -> String {
    let text = if !turn.text.trim().is_empty() {
        turn.text.clone()
    } else if !turn.images.is_empty() {
        match turn.images.len() {
            1 => "(an image)".to_owned(),
            n => format!("({n} images)"),
        }
    } else {
        let results: Vec<&str> = turn.tool_results.iter().map(|r| r.text.as_str()).collect();
        let joined = results.join("\n\n");
        if joined.trim().is_empty() {
            let ids: Vec<&str> = turn
                .tool_results
                .iter()
                .map(|r| r.call_id.as_str())
                .collect();
            format!("tool results for {}", ids.join(", "))
        } else {
            joined
        }
    };
    text.chars().take(MESSAGE_MAX_CHARS).collect()
}

/// One message, read.
enum Message {
    /// A system or developer message's text.
    System(String),
    Turn(Turn),
}

impl Message {
    /// The characters it sends the model, for the conversation's bound.
    fn chars(&self) -> usize {
        match self {
            Message::System(text) => text.chars().count(),
            Message::Turn(turn) => {
                turn.text.chars().count()
                    + turn
                        .tool_calls
                        .iter()
                        .map(|c| c.arguments.chars().count())
                        .sum::<usize>()
                    + turn
                        .tool_results
                        .iter()
                        .map(|r| r.text.chars().count())
                        .sum::<usize>()
            }
        }
    }
}

/// One message: a system prompt, or a turn (with its tool calls, or as a
/// tool's result).
fn message_of(i: usize, message: &Value) -> Result<Message, ApiError> {
    let at = |why: String| ApiError::invalid_field("messages", format!("messages[{i}]: {why}"));
    let Value::Object(message) = message else {
        return Err(at("must be an object".into()));
    };
    let role = match message.get("role").and_then(Value::as_str) {
        Some(role @ ("system" | "developer" | "user" | "assistant" | "tool")) => role,
        Some("function") => {
            return Err(at(
                "the role function is not supported by this API: use tools".into(),
            ))
        }
        Some(other) => return Err(at(format!("unknown role {other}"))),
        None => return Err(at("role is required and must be a string".into())),
    };
    for (name, value) in message {
        match (name.as_str(), role) {
            ("role" | "content", _) => {}
            ("name", "system" | "developer" | "user" | "assistant") => {}
            ("tool_calls", "assistant") => {}
            ("tool_call_id", "tool") => {}
            // An earlier refusal, or an empty list of calls, asks nothing.
            ("refusal" | "tool_calls" | "function_call" | "audio", _)
                if value.is_null() || value == &Value::Array(Vec::new()) => {}
            ("tool_calls" | "function_call" | "audio", _) => {
                return Err(at(format!("{name} is not supported by this API")))
            }
            _ => return Err(at(format!("unrecognized field {name}"))),
        }
    }
    let tool_calls = match role {
        "assistant" => tool_calls_of(message.get("tool_calls")).map_err(at)?,
        _ => Vec::new(),
    };
    let mut images = Vec::new();
    let text = match message.get("content") {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => {
            let (text, in_parts) = content_of_parts(parts).map_err(at)?;
            if !in_parts.is_empty() && role != "user" {
                return Err(at("images are only taken in user messages".into()));
            }
            images = in_parts;
            text
        }
        // An assistant message that only calls tools has no content.
        None | Some(Value::Null) if !tool_calls.is_empty() => String::new(),
        None | Some(Value::Null) => return Err(at("content is required".into())),
        Some(_) => {
            return Err(at(
                "content must be a string or an array of text parts".into()
            ))
        }
    };
    // A tool may return nothing; any other message says something.
    if text.trim().is_empty() && tool_calls.is_empty() && images.is_empty() && role != "tool" {
        return Err(at("content may not be blank".into()));
    }
    if text.chars().count() > MESSAGE_MAX_CHARS {
        return Err(at(format!(
            "content may hold at most {MESSAGE_MAX_CHARS} characters"
        )));
    }
    Ok(match role {
        "system" | "developer" => Message::System(text),
        "user" => Message::Turn(Turn {
            images,
            ..Turn::text(Role::User, text)
        }),
        "assistant" => Message::Turn(Turn {
            tool_calls,
            ..Turn::text(Role::Assistant, text)
        }),
        _ => {
            let call_id = match message.get("tool_call_id") {
                Some(Value::String(id)) if !id.is_empty() => id.clone(),
                _ => return Err(at("a tool message needs its tool_call_id".into())),
            };
            Message::Turn(Turn {
                tool_results: vec![ToolResult { call_id, text }],
                ..Turn::text(Role::User, String::new())
            })
        }
    })
}

/// An assistant message's `tool_calls`: `[{"id", "type": "function",
/// "function": {"name", "arguments"}}]`; null or empty for none.
fn tool_calls_of(value: Option<&Value>) -> Result<Vec<ToolCall>, String> {
    let calls = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(calls)) => calls,
        Some(_) => return Err("tool_calls must be an array".into()),
    };
    let shape = "each tool call is {\"id\", \"type\": \"function\", \"function\": {\"name\", \"arguments\"}}";
    calls
        .iter()
        .map(|call| {
            let id = call
                .get("id")
                .and_then(Value::as_str)
                .filter(|id| !id.is_empty());
            let function = call.get("function");
            let arguments = function
                .and_then(|f| f.get("arguments"))
                .and_then(Value::as_str);
            let fields_ok = call.as_object().is_some_and(|o| o.len() == 3)
                && function
                    .and_then(Value::as_object)
                    .is_some_and(|f| f.len() == 2);
            match (id, call.get("type").and_then(Value::as_str), arguments) {
                (Some(id), Some("function"), Some(arguments)) if fields_ok => Ok(ToolCall {
                    id: id.to_owned(),
                    name: function_name(function.and_then(|f| f.get("name")))?,
                    arguments: arguments.to_owned(),
                }),
                _ => Err(shape.to_owned()),
            }
        })
        .collect()
}

/// Text parts joined, as OpenAI joins them for a model, and the images
/// among them (`image_url` parts with `data:` URLs); any other part (audio,
/// a file) is refused.
fn content_of_parts(parts: &[Value]) -> Result<(String, Vec<Image>), String> {
    if parts.is_empty() {
        return Err("content may not be an empty array".into());
    }
    let mut text = String::new();
    let mut images = Vec::new();
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
            (Some("image_url"), _) => images.push(image_of_part(part)?),
            (Some(other), _) => {
                return Err(format!(
                    "content parts of type {other} are not supported by this API"
                ))
            }
            (None, _) => return Err("each content part needs a type".into()),
        }
    }
    Ok((text, images))
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

    fn weather_tool() -> Value {
        json!({"type": "function", "function": {
            "name": "weather", "description": "The weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}
        }})
    }

    #[test]
    fn a_tool_round_trip_becomes_tools_tool_calls_and_a_user_turn_of_results() {
        let request = parse_json(json!({
            "model": "dummy",
            "tools": [weather_tool()],
            "tool_choice": {"type": "function", "function": {"name": "weather"}},
            "parallel_tool_calls": false,
            "messages": [
                user("Weather in Oslo?"),
                {"role": "assistant", "content": null, "tool_calls": [{
                    "id": "call_1", "type": "function",
                    "function": {"name": "weather", "arguments": "{\"city\":\"Oslo\"}"}
                }]},
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            ]
        }))
        .unwrap();
        let c = &request.conversation;
        assert_eq!(c.tools.len(), 1);
        assert_eq!(
            c.tools[0].description.as_deref(),
            Some("The weather in a city")
        );
        assert_eq!(c.tool_choice, ToolChoice::Named("weather".into()));
        assert_eq!(c.turns.len(), 3);
        assert_eq!(c.turns[1].tool_calls[0].arguments, "{\"city\":\"Oslo\"}");
        assert_eq!(c.turns[1].text, "");
        assert_eq!(c.turns[2].role, Role::User);
        assert_eq!(c.turns[2].tool_results[0].text, "sunny");
        // Saved as the tool's result, the last thing the caller sent.
        assert_eq!(request.last_message.as_str(), "sunny");
    }

    #[test]
    fn tool_mistakes_are_refused_by_name() {
        let with = |extra: Value, messages: Value| {
            let mut body = json!({"model": "dummy", "messages": messages});
            for (k, v) in extra.as_object().unwrap() {
                body[k] = v.clone();
            }
            field_of(parse_json(body))
        };
        let hi = json!([user("hi")]);
        for (extra, starts) in [
            (
                json!({"tools": [{"type": "custom", "custom": {}}]}),
                "tools: tools[0]: only",
            ),
            (
                json!({"tools": [{"type": "function", "function": {"name": "a b"}}]}),
                "tools: tools[0]: function.name",
            ),
            (
                json!({"tools": [weather_tool(), weather_tool()]}),
                "tools: tools[1]: the name weather",
            ),
            (
                json!({"tool_choice": "required"}),
                "tool_choice: may only be none or auto",
            ),
            (
                json!({"tools": [weather_tool()], "tool_choice": "sometimes"}),
                "tool_choice: must be",
            ),
            (
                json!({"tools": [weather_tool()], "tool_choice": {"type": "function", "function": {"name": "x"}}}),
                "tool_choice: names x",
            ),
        ] {
            assert!(
                with(extra.clone(), hi.clone()).starts_with(starts),
                "{extra}: {}",
                with(extra.clone(), hi.clone())
            );
        }
        let call = json!({"role": "assistant", "content": null, "tool_calls": [{
            "id": "c", "type": "function", "function": {"name": "weather", "arguments": "{}"}}]});
        let round =
            json!([user("hi"), call, {"role": "tool", "tool_call_id": "c", "content": "x"}]);
        assert!(with(json!({}), round.clone()).starts_with("tools: the messages hold tool calls"));
        assert!(with(
            json!({"tools": [weather_tool()], "tool_choice": "none"}),
            round.clone()
        )
        .starts_with("tool_choice: none"));
        let stray = json!([user("hi"), {"role": "assistant", "content": "ok"}, {"role": "tool", "tool_call_id": "z", "content": "x"}]);
        assert!(with(json!({"tools": [weather_tool()]}), stray)
            .starts_with("messages: messages[2]: tool_call_id z answers no earlier"));
        // "none" without tool calls: the tools are simply not offered.
        let Value::Object(body) =
            json!({"model": "d", "messages": hi, "tools": [weather_tool()], "tool_choice": "none"})
        else {
            panic!()
        };
        assert!(parse(body, 10).unwrap().conversation.tools.is_empty());
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
                "messages[0]: a tool message needs its tool_call_id",
            ),
            (json!([{"role": "wizard", "content": "x"}]), "unknown role"),
            (json!([{"content": "x"}]), "role is required"),
            (
                json!([user("a"), {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]),
                "messages[1]: an image's url must be a data: URL",
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
