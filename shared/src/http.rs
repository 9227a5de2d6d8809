//! The edge: reading requests and writing responses. Handlers call these so
//! that size limits, JSON rules and auth parsing are the same everywhere.

use lambda_http::http::{header, Method};
use lambda_http::{Body, Error, Request, RequestExt, Response};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use crate::deadline::Deadline;
use crate::domain::{AuthToken, IdempotencyKey, Source};
use crate::error::ApiError;

/// Far above any valid request (a maximal message is 32 KB of UTF-8), far
/// below API Gateway's 10 MB: a bigger body is refused before it is parsed.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Set to `true` on a chat answered from its idempotency key's record: the
/// earlier answer, not a second charge.
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

pub use crate::response::TOKENS_CHARGED;

/// Turns a handler's outcome into the response Lambda returns. Every error,
/// expected or not, leaves as a JSON body; nothing reaches the runtime as Err.
pub fn respond(outcome: Result<Response<Body>, ApiError>) -> Result<Response<Body>, Error> {
    Ok(outcome.unwrap_or_else(ApiError::into_response))
}

/// API Gateway routes by method already; this keeps a function honest when
/// it is invoked directly (cargo lambda invoke, a test, a misrouted event).
pub fn require_method(request: &Request, method: Method) -> Result<(), ApiError> {
    if request.method() == method {
        return Ok(());
    }
    Err(ApiError::MethodNotAllowed {
        allowed: if method == Method::GET { "GET" } else { "POST" }.into(),
    })
}

/// Parses the body as one JSON object into `T`.
///
/// `T` should hold its fields as `Option<Value>`, read with
/// [`required_string`], so a wrong type is reported against its field rather
/// than as a generic parse error. Duplicate keys are refused by serde.
pub fn json_body<T: DeserializeOwned>(request: &Request) -> Result<T, ApiError> {
    json_body_within(request, MAX_BODY_BYTES)
}

/// [`json_body`] with another size limit, for a route whose bodies are
/// larger by nature (a whole conversation on `/v1/chat/completions`).
pub fn json_body_within<T: DeserializeOwned>(
    request: &Request,
    limit: usize,
) -> Result<T, ApiError> {
    let bytes: &[u8] = request.body().as_ref();
    if bytes.len() > limit {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    // serde would also read a struct from a JSON array; the contract is an
    // object, so anything else is refused up front.
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => {}
        None => return Err(ApiError::InvalidJson("the request body is empty".into())),
        Some(_) => return Err(ApiError::InvalidJson("expected a JSON object".into())),
    }
    serde_json::from_slice(bytes).map_err(|e| ApiError::InvalidJson(e.to_string()))
}

/// A whole number, written as one (`90`) or with a zero fraction (`90.0`):
/// JSON Schema's `integer` takes both, so the API does too. With a
/// fraction, up to 2^53, the last integer a double holds exactly (and the
/// largest any of our fields allows); the caller checks its own range.
pub fn whole_number(value: &Value) -> Option<u64> {
    const EXACT: f64 = (1u64 << 53) as f64;
    value.as_u64().or_else(|| {
        value
            .as_f64()
            .filter(|x| x.fract() == 0.0 && (0.0..=EXACT).contains(x))
            .map(|x| x as u64)
    })
}

/// The body of `/register/` and `/login/`, each field read with
/// [`required_string`].
#[derive(Deserialize)]
pub struct CredentialsBody {
    pub username: Option<Value>,
    pub password: Option<Value>,
    /// Registration only, with `REGISTRATION=invite`.
    pub invite: Option<Value>,
}

/// A field that must be present and a JSON string: numbers, booleans, null,
/// lists and objects are refused, never coerced.
pub fn required_string(value: Option<Value>, field: &'static str) -> Result<String, ApiError> {
    match value {
        Some(Value::String(s)) => Ok(s),
        None | Some(Value::Null) => Err(ApiError::invalid_field(field, "this field is required")),
        Some(_) => Err(ApiError::invalid_field(field, "must be a string")),
    }
}

/// The `Idempotency-Key` header, if the client sent one.
pub fn idempotency_key(request: &Request) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(value) = request.headers().get("idempotency-key") else {
        return Ok(None);
    };
    let raw = value.to_str().map_err(|_| {
        ApiError::invalid_field(
            "Idempotency-Key",
            "may contain only printable ASCII characters",
        )
    })?;
    IdempotencyKey::parse(raw)
        .map(Some)
        .map_err(|why| ApiError::invalid_field("Idempotency-Key", why))
}

/// When this invocation must have answered: Lambda's deadline, if the
/// request came through the runtime (not a direct call in a test).
pub fn deadline(request: &Request) -> Deadline {
    request
        .lambda_context_ref()
        .map_or_else(Deadline::none, |context| {
            Deadline::from_epoch_millis(context.deadline)
        })
}

/// Where the request came from: the address API Gateway's request context
/// gives (`requestContext.http.sourceIp`), the TCP peer it saw, which no
/// header the client sends can change. `X-Forwarded-For` is never read.
pub fn source(request: &Request) -> Source {
    match request.request_context_ref() {
        Some(lambda_http::request::RequestContext::ApiGatewayV2(context)) => context
            .http
            .source_ip
            .as_deref()
            .map_or_else(Source::unknown, Source::parse),
        _ => Source::unknown(),
    }
}

/// The caller's token from the `Authorization` header, if it is well formed.
/// Whether this server signed it is for [`crate::auth`] to say, and whether
/// its session is live for the store.
pub fn auth_token(request: &Request) -> Result<AuthToken, ApiError> {
    request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(AuthToken::from_header)
        .ok_or(ApiError::Unauthorized)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_http::http::{HeaderValue, StatusCode};
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Probe {
        name: Option<Value>,
    }

    fn post(body: &str) -> Request {
        let mut request = Request::new(Body::Text(body.to_owned()));
        *request.method_mut() = Method::POST;
        request
    }

    fn code_of<T: std::fmt::Debug>(result: Result<T, ApiError>) -> &'static str {
        result.unwrap_err().code()
    }

    #[test]
    fn a_whole_number_may_carry_a_zero_fraction_up_to_two_to_the_53() {
        let read = |text: &str| whole_number(&serde_json::from_str(text).unwrap());
        assert_eq!(read("90"), Some(90));
        assert_eq!(read("90.0"), Some(90));
        // Past u32, as a budget of this many tokens may be written.
        assert_eq!(read("1307674368000.0"), Some(1_307_674_368_000));
        assert_eq!(read("9007199254740992.0"), Some(1 << 53));
        assert_eq!(read("18014398509481984.0"), None);
        assert_eq!(read("1.5"), None);
        assert_eq!(read("-1.0"), None);
        assert_eq!(read("\"9\""), None);
    }

    #[test]
    fn an_object_is_read_and_unknown_keys_are_ignored() {
        let probe: Probe = json_body(&post(r#" {"name": "x", "extra": [1]} "#)).unwrap();
        assert_eq!(required_string(probe.name, "name").unwrap(), "x");
    }

    #[test]
    fn non_objects_and_garbage_are_invalid_json() {
        for body in [
            "",
            "   ",
            "[\"x\"]",
            "\"x\"",
            "null",
            "{",
            "{\"name\": \"x\",}",
            "name=x",
        ] {
            assert_eq!(
                code_of(json_body::<Probe>(&post(body))),
                "invalid_json",
                "{body:?}"
            );
        }
    }

    #[test]
    fn duplicate_keys_are_refused() {
        assert_eq!(
            code_of(json_body::<Probe>(&post(r#"{"name":"a","name":"b"}"#))),
            "invalid_json"
        );
    }

    #[test]
    fn invalid_utf8_is_invalid_json() {
        let mut request = Request::new(Body::Binary(b"{\"name\": \"\xff\"}".to_vec()));
        *request.method_mut() = Method::POST;
        assert_eq!(code_of(json_body::<Probe>(&request)), "invalid_json");
    }

    #[test]
    fn a_body_over_the_limit_is_refused_before_parsing() {
        let body = format!("{{\"name\": \"{}\"}}", "a".repeat(MAX_BODY_BYTES));
        assert_eq!(
            code_of(json_body::<Probe>(&post(&body))),
            "payload_too_large"
        );
    }

    #[test]
    fn wrong_types_are_refused_per_field() {
        for raw in ["123", "true", "[\"x\"]", "{}", "1.5"] {
            let probe: Probe = serde_json::from_str(&format!("{{\"name\": {raw}}}")).unwrap();
            let err = required_string(probe.name, "name").unwrap_err();
            assert_eq!(err.code(), "invalid_field");
            assert!(err.to_string().contains("must be a string"), "{raw}");
        }
        let probe: Probe = serde_json::from_str(r#"{"name": null}"#).unwrap();
        assert!(required_string(probe.name, "name")
            .unwrap_err()
            .to_string()
            .contains("required"));
    }

    #[test]
    fn a_missing_or_foreign_authorization_header_is_unauthorized() {
        let mut request = post("");
        assert_eq!(code_of(auth_token(&request)), "unauthorized");
        request.headers_mut().insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic dXNlcjpwYXNz"),
        );
        assert_eq!(code_of(auth_token(&request)), "unauthorized");
    }

    #[test]
    fn the_wrong_method_is_405_with_allow() {
        let response = require_method(&post(""), Method::GET)
            .unwrap_err()
            .into_response();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()["allow"], "GET");
    }
}
