//! OpenAI's `CreateEmbeddingRequest`, read into what the embedder is asked.
//!
//! `input` (a string or a list of strings), `model`, `encoding_format`,
//! `dimensions` are honoured; `user` is accepted and not used (it cannot
//! change the answer). Token arrays are refused: the catalog's models read
//! text, and OpenAI's token ids mean nothing to them. Unknown fields are
//! refused, as OpenAI refuses them.

use chat_core::domain::ChatMessage;
use chat_core::http::whole_number;
use chat_core::ApiError;
use serde_json::{Map, Value};

/// At most this many inputs in one request. Each is one model call, made
/// one after the other within the function's time, and every vector is
/// kept with the saved call for a retry under its idempotency key: 32
/// vectors of 1024 numbers are about 175 KB in base64, well inside a
/// DynamoDB item's 400 KB.
pub const MAX_INPUTS: usize = 32;
/// At most this many characters in one input: Titan Text Embeddings V2's
/// own limit (it reads at most 8192 tokens of them).
pub const MAX_INPUT_CHARS: usize = 50_000;
/// The request body's limit, as `/v1/chat/completions`'s.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// How much of the first input the saved call's message shows.
const SUMMARY_CHARS: usize = 200;

/// How the vectors are written in the answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// JSON numbers.
    Float,
    /// Little-endian 32-bit floats in base64: what OpenAI's Python SDK asks
    /// for when its caller does not say, and decodes itself.
    Base64,
}

/// A request, validated.
#[derive(Debug)]
pub struct EmbeddingRequest {
    pub model: String,
    pub inputs: Vec<String>,
    pub encoding: Encoding,
    /// `None`: the model's default size.
    pub dimensions: Option<u32>,
    /// What the call is saved as in the history: how many inputs, and the
    /// start of the first.
    pub summary: ChatMessage,
}

const FIELDS: &[&str] = &["input", "model", "encoding_format", "dimensions", "user"];

/// Reads the request body (already parsed as a JSON object).
pub fn parse(body: Map<String, Value>) -> Result<EmbeddingRequest, ApiError> {
    if let Some(name) = body.keys().find(|name| !FIELDS.contains(&name.as_str())) {
        return Err(ApiError::invalid_field(
            name.clone(),
            format!("unrecognized request argument supplied: {name}"),
        ));
    }
    let model = match body.get("model") {
        Some(Value::String(model)) if !model.trim().is_empty() => model.clone(),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err(ApiError::invalid_field("model", "is required"))
        }
        Some(_) => return Err(ApiError::invalid_field("model", "must be a string")),
    };
    let inputs = inputs(body.get("input"))?;
    let encoding = match body.get("encoding_format") {
        None | Some(Value::Null) => Encoding::Float,
        Some(Value::String(format)) if format == "float" => Encoding::Float,
        Some(Value::String(format)) if format == "base64" => Encoding::Base64,
        Some(_) => {
            return Err(ApiError::invalid_field(
                "encoding_format",
                "must be \"float\" or \"base64\"",
            ))
        }
    };
    let dimensions = match body.get("dimensions") {
        None | Some(Value::Null) => None,
        Some(value) => match whole_number(value).and_then(|n| u32::try_from(n).ok()) {
            Some(n) if n >= 1 => Some(n),
            _ => {
                return Err(ApiError::invalid_field(
                    "dimensions",
                    "must be a whole number of at least 1",
                ))
            }
        },
    };
    match body.get("user") {
        None | Some(Value::Null) | Some(Value::String(_)) => {}
        Some(_) => return Err(ApiError::invalid_field("user", "must be a string")),
    }
    let summary = summary_of(&inputs)?;
    Ok(EmbeddingRequest {
        model,
        inputs,
        encoding,
        dimensions,
        summary,
    })
}

/// `input`: a string, or a list of 1 to [`MAX_INPUTS`] strings, none
/// empty, none over [`MAX_INPUT_CHARS`].
fn inputs(input: Option<&Value>) -> Result<Vec<String>, ApiError> {
    let bad = |reason: String| ApiError::invalid_field("input", reason);
    let inputs: Vec<String> = match input {
        None | Some(Value::Null) => return Err(bad("is required".into())),
        Some(Value::String(text)) => vec![text.clone()],
        Some(Value::Array(items)) => {
            if items.is_empty() {
                return Err(bad("must hold at least one string".into()));
            }
            if items.len() > MAX_INPUTS {
                return Err(bad(format!(
                    "holds {} inputs; at most {MAX_INPUTS} per request",
                    items.len()
                )));
            }
            let tokens = items.iter().any(|item| item.is_number() || item.is_array());
            if tokens {
                return Err(bad(
                    "token arrays are not supported: send the text itself".into()
                ));
            }
            items
                .iter()
                .map(|item| match item {
                    Value::String(text) => Ok(text.clone()),
                    _ => Err(bad("must be a string or a list of strings".into())),
                })
                .collect::<Result<_, _>>()?
        }
        Some(_) => return Err(bad("must be a string or a list of strings".into())),
    };
    for (index, text) in inputs.iter().enumerate() {
        if text.is_empty() {
            return Err(bad(format!("input {index} is empty")));
        }
        if text.chars().count() > MAX_INPUT_CHARS {
            return Err(bad(format!(
                "input {index} is over {MAX_INPUT_CHARS} characters"
            )));
        }
    }
    Ok(inputs)
}

/// The saved call's message: `embeddings of N inputs: ` and the start of
/// the first, so a history reads what was sent without holding it all.
fn summary_of(inputs: &[String]) -> Result<ChatMessage, ApiError> {
    let first: String = inputs
        .first()
        .map(|text| text.chars().take(SUMMARY_CHARS).collect())
        .unwrap_or_default();
    let more = inputs
        .first()
        .is_some_and(|text| text.chars().count() > SUMMARY_CHARS);
    let noun = if inputs.len() == 1 { "input" } else { "inputs" };
    let ellipsis = if more { "…" } else { "" };
    ChatMessage::parse(format!(
        "embeddings of {} {noun}: {first}{ellipsis}",
        inputs.len()
    ))
    .map_err(|reason| ApiError::invalid_field("input", reason))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parsed(body: Value) -> Result<EmbeddingRequest, ApiError> {
        match body {
            Value::Object(map) => parse(map),
            _ => panic!("not an object"),
        }
    }

    fn refused_field(body: Value) -> String {
        match parsed(body) {
            Err(ApiError::InvalidField { field, .. }) => field.into_owned(),
            other => panic!("accepted or another error: {other:?}"),
        }
    }

    #[test]
    fn a_string_or_a_list_of_strings_is_read_in_order() {
        let one = parsed(json!({"model": "e", "input": "hello"})).unwrap();
        assert_eq!(one.inputs, ["hello"]);
        assert_eq!((one.encoding, one.dimensions), (Encoding::Float, None));
        assert_eq!(one.summary.as_str(), "embeddings of 1 input: hello");
        let many = parsed(json!({
            "model": "e", "input": ["a", "b"], "encoding_format": "base64",
            "dimensions": 256, "user": "u-1"
        }))
        .unwrap();
        assert_eq!(many.inputs, ["a", "b"]);
        assert_eq!(
            (many.encoding, many.dimensions),
            (Encoding::Base64, Some(256))
        );
        assert_eq!(many.summary.as_str(), "embeddings of 2 inputs: a");
    }

    #[test]
    fn every_fault_names_its_field() {
        let longest = "x".repeat(MAX_INPUT_CHARS);
        let too_long = "x".repeat(MAX_INPUT_CHARS + 1);
        let too_many: Vec<&str> = vec!["a"; MAX_INPUTS + 1];
        let cases = [
            (json!({"model": "e", "input": "a", "colour": 1}), "colour"),
            (json!({"input": "a"}), "model"),
            (json!({"model": 3, "input": "a"}), "model"),
            (json!({"model": "e"}), "input"),
            (json!({"model": "e", "input": ""}), "input"),
            (json!({"model": "e", "input": []}), "input"),
            (json!({"model": "e", "input": ["a", ""]}), "input"),
            (json!({"model": "e", "input": [1, 2, 3]}), "input"),
            (json!({"model": "e", "input": [[1, 2]]}), "input"),
            (json!({"model": "e", "input": {"text": "a"}}), "input"),
            (json!({"model": "e", "input": too_long}), "input"),
            (json!({"model": "e", "input": too_many}), "input"),
            (
                json!({"model": "e", "input": "a", "encoding_format": "int8"}),
                "encoding_format",
            ),
            (
                json!({"model": "e", "input": "a", "dimensions": 0}),
                "dimensions",
            ),
            (
                json!({"model": "e", "input": "a", "dimensions": 1.5}),
                "dimensions",
            ),
            (
                json!({"model": "e", "input": "a", "dimensions": "256"}),
                "dimensions",
            ),
            (json!({"model": "e", "input": "a", "user": 7}), "user"),
        ];
        for (body, field) in cases {
            assert_eq!(refused_field(body.clone()), field, "{body}");
        }
        assert!(parsed(json!({"model": "e", "input": longest})).is_ok());
        let most = vec!["a"; MAX_INPUTS];
        assert!(parsed(json!({"model": "e", "input": most})).is_ok());
    }

    #[test]
    fn a_long_first_input_is_cut_in_the_summary() {
        let text = "é".repeat(SUMMARY_CHARS + 5);
        let request = parsed(json!({"model": "e", "input": [text]})).unwrap();
        let expected = format!("embeddings of 1 input: {}…", "é".repeat(SUMMARY_CHARS));
        assert_eq!(request.summary.as_str(), expected);
    }
}
