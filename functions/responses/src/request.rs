//! OpenAI's Responses request, read into the Chat Completions request it
//! asks the same of, then checked by completions' own parser: one set of
//! rules (sizes, roles, images, sampling ranges) for what a model is sent.
//!
//! As on completions, every field is honoured, accepted because it cannot
//! change the answer, or refused with a 400 that names it. What needs
//! state kept by the server (`previous_response_id`, `conversation`,
//! `store: true`, `background`) and the built-in tools are refused;
//! function tools, calls and their outputs become completions' own:
//! docs/openai.md.

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
    /// The function tools, as a response echoes them.
    pub tools: Vec<Value>,
    /// As asked, `"auto"` when not.
    pub tool_choice: Value,
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
    "tools",
    "tool_choice",
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
    let mut messages = Vec::new();
    // The `input` item each message came from: an error names that.
    let mut origins = Vec::new();
    if let Some(text) = &instructions {
        messages.push(json!({"role": "system", "content": text}));
        origins.push(None);
    }
    for (message, origin) in input(present(&body, "input"))? {
        messages.push(message);
        origins.push(Some(origin));
    }
    let mut asked = Map::new();
    asked.insert("messages".into(), Value::Array(messages));
    let (tools, echoed_tools) = tools(present(&body, "tools"))?;
    if let Some(tools) = tools {
        asked.insert("tools".into(), tools);
    }
    let (choice, echoed_choice) = tool_choice(present(&body, "tool_choice"))?;
    if let Some(choice) = choice {
        asked.insert("tool_choice".into(), choice);
    }
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
    let completion = chat::parse(asked, cap).map_err(|e| in_our_names(e, &origins))?;
    Ok(ResponseRequest {
        max_output_tokens: max_output_tokens.map(|()| completion.sampling.max_tokens),
        completion,
        instructions,
        tools: echoed_tools,
        tool_choice: echoed_choice,
    })
}

/// Responses' function tools (`{"type": "function", "name", "description",
/// "parameters", "strict"}`) as completions' (the same fields under
/// `function`, where completions checks them), and as a response echoes
/// them. Built-in tools (web search, file search, ...) are refused.
fn tools(value: Option<&Value>) -> Result<(Option<Value>, Vec<Value>), ApiError> {
    let items = match value {
        None => return Ok((None, Vec::new())),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(ApiError::invalid_field("tools", "must be an array")),
    };
    let mut asked = Vec::new();
    let mut echoed = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = |why: String| ApiError::invalid_field("tools", format!("tools[{i}]: {why}"));
        let Value::Object(item) = item else {
            return Err(at("must be an object".into()));
        };
        match item.get("type").and_then(Value::as_str) {
            Some("function") => {}
            Some(other) => {
                return Err(at(format!(
                    "tools of type {other} are not supported by this API: only function tools"
                )))
            }
            None => return Err(at("type is required and must be a string".into())),
        }
        let mut function = Map::new();
        for (name, value) in item {
            match name.as_str() {
                "type" => {}
                "name" | "description" | "parameters" | "strict" => {
                    function.insert(name.clone(), value.clone());
                }
                _ => return Err(at(format!("unrecognized field {name}"))),
            }
        }
        let field = |name: &str| function.get(name).cloned().unwrap_or(Value::Null);
        echoed.push(json!({
            "type": "function",
            "name": field("name"),
            "description": field("description"),
            "parameters": field("parameters"),
            "strict": field("strict"),
        }));
        asked.push(json!({"type": "function", "function": function}));
    }
    Ok((Some(Value::Array(asked)), echoed))
}

/// `tool_choice` as completions takes it, and as a response echoes it:
/// `"none"`, `"auto"`, `"required"`, or one function, `{"type":
/// "function", "name"}` (completions' `{"type", "function": {"name"}}`).
fn tool_choice(value: Option<&Value>) -> Result<(Option<Value>, Value), ApiError> {
    match value {
        None => Ok((None, json!("auto"))),
        Some(Value::String(choice)) => Ok((Some(json!(choice)), json!(choice))),
        Some(Value::Object(choice))
            if choice.len() == 2
                && choice.get("type") == Some(&json!("function"))
                && choice.get("name").is_some_and(Value::is_string) =>
        {
            let name = &choice["name"];
            Ok((
                Some(json!({"type": "function", "function": {"name": name}})),
                json!({"type": "function", "name": name}),
            ))
        }
        Some(_) => Err(ApiError::invalid_field(
            "tool_choice",
            "must be none, auto, required or {\"type\": \"function\", \"name\": string}",
        )),
    }
}

/// `input` as Chat Completions messages, each with the index of the item
/// it came from: a string is one user message; a list holds messages
/// (`{"role", "content"}`, `type: "message"` or not), whose content is a
/// string or input parts, the function calls an earlier answer made
/// (`function_call`: joined into one assistant message with the text
/// before them) and their results (`function_call_output`: a `tool`
/// message each). Other items (references to stored items, built-in
/// tools' calls) are refused.
fn input(value: Option<&Value>) -> Result<Vec<(Value, usize)>, ApiError> {
    let items = match value {
        Some(Value::String(text)) => {
            return Ok(vec![(json!({"role": "user", "content": text}), 0)])
        }
        Some(Value::Array(items)) => items,
        None => return Err(ApiError::invalid_field("input", "is required")),
        Some(_) => {
            return Err(ApiError::invalid_field(
                "input",
                "must be a string or an array of messages",
            ))
        }
    };
    let mut messages: Vec<(Value, usize)> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = |why: String| ApiError::invalid_field("input", format!("input[{i}]: {why}"));
        match item.get("type").and_then(Value::as_str) {
            Some("function_call") => {
                let call = function_call(item).map_err(at)?;
                match messages.last_mut() {
                    Some((last, _)) if last["role"] == "assistant" => {
                        match last.get_mut("tool_calls") {
                            Some(Value::Array(calls)) => calls.push(call),
                            _ => last["tool_calls"] = json!([call]),
                        }
                    }
                    _ => messages.push((
                        json!({"role": "assistant", "content": null, "tool_calls": [call]}),
                        i,
                    )),
                }
            }
            Some("function_call_output") => {
                messages.push((function_call_output(item).map_err(at)?, i));
            }
            _ => messages.push((message_of(item).map_err(at)?, i)),
        }
    }
    Ok(messages)
}

/// A call an earlier answer made, `{"type": "function_call", "call_id",
/// "name", "arguments"}` (with the `id` and `status` we sent it with), as
/// completions' tool call.
fn function_call(item: &Value) -> Result<Value, String> {
    let Value::Object(item) = item else {
        return Err("must be an object".into());
    };
    for (name, value) in item {
        match name.as_str() {
            "type" => {}
            "call_id" | "name" | "arguments" if value.is_string() => {}
            "call_id" | "name" | "arguments" => return Err(format!("{name} must be a string")),
            "id" | "status" if value.is_string() || value.is_null() => {}
            "id" | "status" => return Err(format!("{name} must be a string")),
            _ => return Err(format!("unrecognized field {name}")),
        }
    }
    let (Some(call_id), Some(name), Some(arguments)) =
        (item.get("call_id"), item.get("name"), item.get("arguments"))
    else {
        return Err("a function_call item needs call_id, name and arguments".into());
    };
    Ok(json!({"id": call_id, "type": "function",
        "function": {"name": name, "arguments": arguments}}))
}

/// A tool's result, `{"type": "function_call_output", "call_id",
/// "output"}`, as completions' `tool` message; `output` is text, or
/// `input_text` parts.
fn function_call_output(item: &Value) -> Result<Value, String> {
    let Value::Object(item) = item else {
        return Err("must be an object".into());
    };
    for (name, value) in item {
        match name.as_str() {
            "type" | "output" => {}
            "call_id" if value.is_string() => {}
            "call_id" => return Err("call_id must be a string".into()),
            "id" | "status" if value.is_string() || value.is_null() => {}
            "id" | "status" => return Err(format!("{name} must be a string")),
            _ => return Err(format!("unrecognized field {name}")),
        }
    }
    let Some(call_id) = item.get("call_id") else {
        return Err("a function_call_output item needs call_id and output".into());
    };
    let output = match item.get("output") {
        Some(Value::String(text)) => Value::String(text.clone()),
        Some(Value::Array(parts)) if !parts.is_empty() => Value::Array(
            parts
                .iter()
                .map(|part| match input_part(part)? {
                    text if text["type"] == "text" => Ok(text),
                    _ => Err("a function_call_output's parts are input_text parts".to_owned()),
                })
                .collect::<Result<_, _>>()?,
        ),
        _ => return Err("output must be a string or input_text parts".into()),
    };
    Ok(json!({"role": "tool", "tool_call_id": call_id, "content": output}))
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
/// the `input` item it came from (`origins[i]`; `None` for the
/// instructions' message), its `max_completion_tokens` is
/// `max_output_tokens`, its `tools[i]: function.name` is `tools[i]: name`.
fn in_our_names(error: ApiError, origins: &[Option<usize>]) -> ApiError {
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
                Some((i, rest)) => match origins.get(i) {
                    Some(Some(item)) => format!("input[{item}]{rest}"),
                    Some(None) => {
                        return ApiError::invalid_field(
                            "instructions",
                            format!("instructions{rest}"),
                        )
                    }
                    None => reason.replace("messages", "input"),
                },
                None => reason.replace("messages", "input"),
            };
            ApiError::invalid_field("input", reason)
        }
        "max_completion_tokens" => ApiError::invalid_field(
            "max_output_tokens",
            reason.replace("max_completion_tokens", "max_output_tokens"),
        ),
        "tools" => ApiError::invalid_field("tools", reason.replace("function.", "")),
        "tool_choice" => ApiError::invalid_field(
            "tool_choice",
            reason.replace("a function", "{\"type\": \"function\", \"name\"}"),
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
        "include" => value.as_array().is_some_and(Vec::is_empty),
        "reasoning" => value.as_object().is_some_and(Map::is_empty),
        "text" => {
            value.as_object().is_some_and(Map::is_empty)
                || value == &json!({"format": {"type": "text"}})
        }
        "truncation" => value == "disabled",
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
        // A result for a call no earlier answer made.
        let call = json!({"model": "dummy", "input": [{"role": "user", "content": "Hi"},
            {"type": "function_call_output", "call_id": "c", "output": "1"}]});
        assert_eq!(refused_field(call), "input");
        assert_eq!(
            refused_field(json!({"model": "dummy", "input": "Hi", "n": 2})),
            "n"
        );
        assert_eq!(refused_field(json!({"model": "dummy"})), "input");
    }

    fn weather() -> Value {
        json!({"type": "function", "name": "weather", "description": "Now, somewhere",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}})
    }

    #[test]
    fn function_tools_calls_and_their_outputs_become_completions_own() {
        let request = parsed(json!({
            "model": "dummy",
            "tools": [weather()],
            "tool_choice": {"type": "function", "name": "weather"},
            "input": [
                {"role": "user", "content": "Weather in Oslo and Bergen?"},
                {"type": "message", "role": "assistant", "content": "Let me look."},
                {"type": "function_call", "id": "fc_1", "call_id": "c1", "name": "weather",
                 "arguments": "{\"city\":\"Oslo\"}", "status": "completed"},
                {"type": "function_call", "call_id": "c2", "name": "weather",
                 "arguments": "{\"city\":\"Bergen\"}"},
                {"type": "function_call_output", "call_id": "c1", "output": "rain"},
                {"type": "function_call_output", "call_id": "c2",
                 "output": [{"type": "input_text", "text": "sun"}]},
            ],
        }))
        .unwrap();
        let conversation = &request.completion.conversation;
        assert_eq!(conversation.tools.len(), 1);
        assert_eq!(conversation.tools[0].name, "weather");
        // The text and both calls are one assistant turn; both results one
        // user turn, as Converse takes them.
        assert_eq!(conversation.turns.len(), 3);
        assert_eq!(conversation.turns[1].text, "Let me look.");
        let calls: Vec<&str> = conversation.turns[1]
            .tool_calls
            .iter()
            .map(|c| c.id.as_str())
            .collect();
        assert_eq!(calls, ["c1", "c2"]);
        let results: Vec<(&str, &str)> = conversation.turns[2]
            .tool_results
            .iter()
            .map(|r| (r.call_id.as_str(), r.text.as_str()))
            .collect();
        assert_eq!(results, [("c1", "rain"), ("c2", "sun")]);
        assert_eq!(request.tools[0]["name"], "weather");
        assert_eq!(request.tools[0]["strict"], Value::Null);
        assert_eq!(
            request.tool_choice,
            json!({"type": "function", "name": "weather"})
        );
    }

    #[test]
    fn tools_are_refused_in_this_requests_names() {
        let refusal = |body: Value| match parsed(body) {
            Err(ApiError::InvalidField { field, reason }) => (field.into_owned(), reason),
            other => panic!("{other:?}"),
        };
        let hi = |extra: Value| {
            let mut body = json!({"model": "dummy", "input": "Hi"});
            for (k, v) in extra.as_object().unwrap() {
                body[k] = v.clone();
            }
            body
        };
        let (field, reason) = refusal(hi(json!({"tools": [{"type": "web_search"}]})));
        assert_eq!(field, "tools");
        assert!(reason.contains("web_search"), "{reason}");
        let (field, reason) = refusal(hi(json!({"tools": [{"type": "function", "name": "a b"}]})));
        assert_eq!(
            (field.as_str(), reason.contains("function.")),
            ("tools", false)
        );
        assert!(reason.starts_with("tools[0]: name"), "{reason}");
        let (field, _) = refusal(hi(json!({"tools": [weather()],
            "tool_choice": {"type": "function", "name": "other"}})));
        assert_eq!(field, "tool_choice");
        let (field, _) = refusal(hi(json!({"tools": [weather()],
            "tool_choice": {"type": "web_search_preview"}})));
        assert_eq!(field, "tool_choice");
        let (field, _) = refusal(hi(json!({"tool_choice": "required"})));
        assert_eq!(field, "tool_choice");
        // The calls after the text were joined into its message: an error
        // in the item after them still names that item.
        let (field, reason) = refusal(json!({"model": "dummy", "tools": [weather()], "input": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Looking."},
            {"type": "function_call", "call_id": "c1", "name": "weather", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "rain"},
            {"role": "user", "content": " "},
        ]}));
        assert_eq!(field, "input");
        assert!(reason.starts_with("input[4]"), "{reason}");
        let (_, reason) = refusal(json!({"model": "dummy", "tools": [weather()], "input": [
            {"role": "user", "content": "Hi"},
            {"type": "function_call", "call_id": "c1", "name": "weather"},
        ]}));
        assert!(
            reason.starts_with("input[1]: a function_call item needs"),
            "{reason}"
        );
    }
}
