//! Server-sent events: the stream as the API writes it, and each event as
//! the spec's `text/event-stream` schemas describe it.

use serde_json::Value;

/// The media type of a stream of server-sent events.
pub const EVENT_STREAM: &str = "text/event-stream";

/// The `data` of each event of a `text/event-stream` body, or what is wrong
/// with it: [`named_event_data`] without the names.
pub fn event_data(body: &[u8]) -> Result<Vec<String>, String> {
    Ok(named_event_data(body)?
        .into_iter()
        .map(|(_, data)| data)
        .collect())
}

/// The type and `data` of each event of a `text/event-stream` body, or
/// what is wrong with it. Every event this API sends is one `data: ` line
/// (after one `event: ` line on `/v1/responses`, which names each event as
/// OpenAI does; the default type, `message`, elsewhere) and a blank line;
/// anything else (another field, a comment, a multi-line event, a stream
/// that stops mid-event) is reported rather than read leniently.
pub fn named_event_data(body: &[u8]) -> Result<Vec<(String, String)>, String> {
    let text = std::str::from_utf8(body).map_err(|e| format!("the stream is not UTF-8: {e}"))?;
    if !text.is_empty() && !text.ends_with("\n\n") {
        return Err(format!(
            "the stream does not end with a whole event: {text:?}"
        ));
    }
    text.split_terminator("\n\n")
        .map(|event| {
            let (kind, rest) = match event.strip_prefix("event: ") {
                Some(named) => match named.split_once('\n') {
                    Some((kind, rest)) => (kind, rest),
                    None => return Err(format!("an event without data: {event:?}")),
                },
                None => ("message", event),
            };
            match rest.strip_prefix("data: ") {
                Some(data) if !data.contains(['\n', '\r']) && !kind.contains('\r') => {
                    Ok((kind.to_owned(), data.to_owned()))
                }
                _ => Err(format!("not one data line: {event:?}")),
            }
        })
        .collect()
}

/// One event as an event-stream parser gives it, and as the spec's
/// `text/event-stream` schemas describe it: its data, and its type, the
/// default `message` for an event the API sends no `event:` field with.
pub fn event_object(data: &str) -> Value {
    named_event_object("message", data)
}

/// [`event_object`] of an event of type `kind`.
pub fn named_event_object(kind: &str, data: &str) -> Value {
    serde_json::json!({ "data": data, "event": kind })
}
