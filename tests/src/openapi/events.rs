//! Server-sent events: the stream as the API writes it, and each event as
//! the spec's `text/event-stream` schemas describe it.

use serde_json::Value;

/// The media type of a stream of server-sent events.
pub const EVENT_STREAM: &str = "text/event-stream";

/// The `data` of each event of a `text/event-stream` body, or what is wrong
/// with it. Every event this API sends is one `data: ` line and a blank
/// line; anything else (another field, a comment, a multi-line event, a
/// stream that stops mid-event) is reported rather than read leniently.
pub fn event_data(body: &[u8]) -> Result<Vec<String>, String> {
    let text = std::str::from_utf8(body).map_err(|e| format!("the stream is not UTF-8: {e}"))?;
    if !text.is_empty() && !text.ends_with("\n\n") {
        return Err(format!(
            "the stream does not end with a whole event: {text:?}"
        ));
    }
    text.split_terminator("\n\n")
        .map(|event| match event.strip_prefix("data: ") {
            Some(data) if !data.contains(['\n', '\r']) => Ok(data.to_owned()),
            _ => Err(format!("not one data line: {event:?}")),
        })
        .collect()
}

/// One event as an event-stream parser gives it, and as the spec's
/// `text/event-stream` schemas describe it: its data, and its type, the
/// default `message` since the API sends no `event:` field.
pub fn event_object(data: &str) -> Value {
    serde_json::json!({ "data": data, "event": "message" })
}
