//! Calling `/v1/chat/completions` through its handler, and reading what
//! comes back: a JSON answer, or a stream of server-sent events.

use std::sync::Arc;

use chat_core::App;
use http_body_util::BodyExt;
use lambda_http::http::HeaderMap;
use lambda_http::Response;
use serde_json::Value;

use crate::{event, with_auth, with_body, StreamBody};

/// An answer read to its end.
pub struct Completed {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Completed {
    pub async fn of(response: Response<StreamBody>) -> Self {
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.expect("the answer ends").to_bytes();
        Completed {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body: bytes.to_vec(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    /// The `data:` of each server-sent event, in order.
    pub fn events(&self) -> Vec<String> {
        events_of(&String::from_utf8(self.body.clone()).unwrap())
    }
}

/// The `data:` of each event in a text/event-stream body. Every event we
/// send is one `data:` line and a blank line; anything else is a bug.
pub fn events_of(text: &str) -> Vec<String> {
    assert!(text.ends_with("\n\n") || text.is_empty(), "{text:?}");
    text.split_terminator("\n\n")
        .map(|event| {
            event
                .strip_prefix("data: ")
                .unwrap_or_else(|| panic!("not a data event: {event:?}"))
                .to_owned()
        })
        .collect()
}

/// The text the chunks' deltas add up to.
pub fn streamed_text(chunks: &[Value]) -> String {
    chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect()
}

/// A completion request with this `Authorization` (none for `None`) and
/// this body, shaped like `events/completions.json`.
pub fn completion_request(authorization: Option<&str>, body: &str) -> lambda_http::Request {
    let mut request = with_body(event("completions"), body);
    match authorization {
        Some(value) => request = with_auth(request, value),
        None => {
            request.headers_mut().remove("authorization");
        }
    }
    request
}

/// `body` sent with `token` as the bearer.
pub async fn complete(app: &Arc<App>, token: &str, body: Value) -> Completed {
    complete_as(app, Some(&format!("Bearer {token}")), &body.to_string()).await
}

pub async fn complete_as(app: &Arc<App>, authorization: Option<&str>, body: &str) -> Completed {
    let response = completions::handle(app.clone(), completion_request(authorization, body))
        .await
        .unwrap();
    Completed::of(response).await
}

/// `body` sent with `token` as the bearer and `key` as its
/// `Idempotency-Key`.
pub async fn complete_keyed(app: &Arc<App>, token: &str, key: &str, body: &Value) -> Completed {
    let mut request = completion_request(Some(&format!("Bearer {token}")), &body.to_string());
    request
        .headers_mut()
        .insert("idempotency-key", key.parse().expect("a header value"));
    let response = completions::handle(app.clone(), request).await.unwrap();
    Completed::of(response).await
}

/// The answer's head and its body still streaming: a test reads as much
/// of it as it likes, and may drop it (a client hanging up).
pub async fn open(app: &Arc<App>, token: &str, body: &Value) -> Response<StreamBody> {
    let request = completion_request(Some(&format!("Bearer {token}")), &body.to_string());
    completions::handle(app.clone(), request).await.unwrap()
}

/// The next piece of bytes of a streaming body, `None` at its end.
pub async fn next_bytes(body: &mut StreamBody) -> Option<Vec<u8>> {
    loop {
        let frame = body.frame().await?.expect("the stream does not fail");
        if let Ok(data) = frame.into_data() {
            return Some(data.to_vec());
        }
    }
}

/// `count` completions of `body` at once, each read to its end.
pub async fn simultaneous_completions(
    app: &Arc<App>,
    token: &str,
    body: &Value,
    count: usize,
) -> Vec<Completed> {
    let tasks: Vec<_> = (0..count)
        .map(|_| {
            let (app, token, body) = (app.clone(), token.to_owned(), body.clone());
            tokio::spawn(async move { complete(&app, &token, body).await })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    answers
}

/// `body` sent to `/v1/responses` with `token` as the bearer, and with
/// `key` as its `Idempotency-Key` if given. The request is completions'
/// event with another body: the function reads no path.
pub async fn respond(app: &Arc<App>, token: &str, key: Option<&str>, body: &Value) -> Completed {
    let mut request = completion_request(Some(&format!("Bearer {token}")), &body.to_string());
    if let Some(key) = key {
        request
            .headers_mut()
            .insert("idempotency-key", key.parse().expect("a header value"));
    }
    let response = responses::handle(app.clone(), request).await.unwrap();
    Completed::of(response).await
}

/// The `(event, data)` of each server-sent event of a Responses stream:
/// every one names itself (`event:`), as OpenAI's do.
pub fn named_events(text: &str) -> Vec<(String, Value)> {
    assert!(text.ends_with("\n\n") || text.is_empty(), "{text:?}");
    text.split_terminator("\n\n")
        .map(|event| {
            let (name, data) = event
                .strip_prefix("event: ")
                .and_then(|rest| rest.split_once("\ndata: "))
                .unwrap_or_else(|| panic!("not a named data event: {event:?}"));
            let data: Value = serde_json::from_str(data).expect("each event's data is JSON");
            (name.to_owned(), data)
        })
        .collect()
}
