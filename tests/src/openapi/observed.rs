//! A response as observed, and the error code and field a body carries.

use lambda_http::{Body, Response};
use serde_json::Value;

/// A response as a client sees it: status, headers, body bytes.
#[derive(Clone, Debug)]
pub struct Observed {
    pub status: u16,
    /// Names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Observed {
    pub fn of(response: &Response<Body>) -> Self {
        Observed {
            status: response.status().as_u16(),
            headers: response
                .headers()
                .iter()
                .map(|(name, value)| {
                    (
                        name.as_str().to_ascii_lowercase(),
                        String::from_utf8_lossy(value.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: response.body().to_vec(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The code of a JSON error body, if this is one: `error` in ours,
    /// `error.code` in OpenAI's (`{"error": {"code": ...}}`).
    pub fn error_code(&self) -> Option<String> {
        let body: Value = serde_json::from_slice(&self.body).ok()?;
        error_code_of(&body)
    }

    /// The field an `invalid_field` error names: `field` in ours,
    /// `error.param` in OpenAI's.
    pub fn error_field(&self) -> Option<String> {
        let body: Value = serde_json::from_slice(&self.body).ok()?;
        let field = match body.get("error")? {
            Value::Object(error) => error.get("param")?,
            _ => body.get("field")?,
        };
        field.as_str().map(str::to_owned)
    }
}

/// The code of an error body in either shape (see [`Observed::error_code`]).
pub fn error_code_of(body: &Value) -> Option<String> {
    match body.get("error")? {
        Value::String(code) => Some(code.clone()),
        Value::Object(error) => error.get("code")?.as_str().map(str::to_owned),
        _ => None,
    }
}
