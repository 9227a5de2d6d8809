//! The one shape of every answer the HTTP API writes: a status and a JSON
//! body. Both a handler's success and [`crate::ApiError`]'s mapping build on
//! it, so it sits below the two and neither imports the other for it.

use lambda_http::http::{header, HeaderValue, StatusCode};
use lambda_http::{Body, Response};
use serde_json::Value;

/// On every answered chat, and on a model failure that was charged: the
/// tokens this request charged (what the model used under usage pricing;
/// 0 for a replay).
pub const TOKENS_CHARGED: &str = "tokens-charged";

pub fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    let mut response = Response::new(Body::Text(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
