//! The one error type every handler returns, and its one mapping to HTTP.
//!
//! Clients get a stable machine-readable `error` code and a plain `message`;
//! the cause of a server-side failure goes to the log only.

use crate::credits::Credits;
use lambda_http::http::{header, HeaderMap, HeaderValue, StatusCode};

use crate::clock::Timestamp;
use crate::domain::Period;
use crate::response::json_response;
use lambda_http::{Body, Response};
use serde_json::{json, Map, Value};

use std::borrow::Cow;

/// The header that says when an exhausted key budget starts over.
pub const BUDGET_RESETS_AT: &str = "x-budget-resets-at";

pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Seconds a client should wait before retrying after a 503.
pub const RETRY_AFTER_SECONDS: u32 = 1;

/// The same after a 503 from the model: its quotas count per minute, so a
/// throttled model is rarely free again within one second.
pub const MODEL_RETRY_AFTER_SECONDS: u32 = 5;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("request body is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("{field}: {reason}")]
    InvalidField {
        field: Cow<'static, str>,
        reason: String,
    },
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("authentication credentials were not provided or are not valid")]
    Unauthorized,
    #[error("a user with that username already exists")]
    UsernameTaken,
    /// `REGISTRATION=closed`: nobody may register.
    #[error("registration is closed")]
    RegistrationClosed,
    /// `REGISTRATION=invite`: the invite code is missing, unknown or spent.
    #[error("registration needs a valid, unused invite code")]
    InvalidInvite,
    #[error("unable to log in with the provided credentials")]
    InvalidCredentials,
    /// Too many wrong passwords for this user lately: the next try waits.
    #[error("too many failed logins for this user; retry after {retry_after} seconds")]
    TooManyAttempts { retry_after: u64 },
    /// This client address reached its cap of login checks or sign-ups
    /// for the window (`LOGIN_CHECKS_PER_IP`, `REGISTRATIONS_PER_IP`).
    #[error("too many requests from this address; retry after {retry_after} seconds")]
    IpRateLimited { retry_after: u64 },
    /// The per-user chat rate (`CHATS_PER_MINUTE`) is reached.
    #[error("too many chats this minute; retry after {retry_after} seconds")]
    RateLimited { retry_after: u64 },
    /// The user already has `OPEN_CALLS_PER_USER` model calls running.
    #[error(
        "too many model calls running for this user at once; retry after {retry_after} seconds"
    )]
    TooManyOpenCalls { retry_after: u64 },
    /// The operator disabled the account (`chat-ops disable`).
    #[error("this account is disabled")]
    AccountDisabled,
    #[error("not enough tokens: a chat costs {cost}, the balance is {balance}")]
    InsufficientTokens { balance: Credits, cost: Credits },
    /// The API key's own budget for its period would be passed: the
    /// account's balance may still hold tokens, the key may not spend them
    /// before `resets_at` (never, for a total budget).
    #[error("this API key's {} budget of {budget} tokens would be passed; {left} left, the chat needs {cost}", period.as_str())]
    KeyBudgetExceeded {
        budget: Credits,
        period: Period,
        left: Credits,
        cost: Credits,
        resets_at: Option<Timestamp>,
    },
    /// The API key is limited to other models than the one asked for.
    #[error("this API key may not use the model `{0}`")]
    ModelNotAllowed(String),
    #[error("this Idempotency-Key was used for a different message")]
    IdempotencyKeyReused,
    /// A chat under the same key is still waiting for the model.
    #[error("a chat with this Idempotency-Key is still being answered; retry shortly")]
    IdempotencyKeyInProgress,
    #[error("no such endpoint")]
    NotFound,
    #[error("no such API key")]
    KeyNotFound,
    #[error("a user may hold at most {limit} API keys; revoke one first")]
    TooManyKeys { limit: usize },
    /// API keys are managed with a login session, never with a key.
    #[error("API keys are managed with a login token, not with an API key")]
    SessionRequired,
    /// The OpenAI route was asked for a model this deployment does not serve.
    #[error("the model `{0}` does not exist; GET /v1/models lists the models served here")]
    UnknownModel(String),
    /// A chat route was asked for an embedding model, or `/v1/embeddings`
    /// for a chat model: `kind` is what the named model is.
    #[error("{}", wrong_kind_message(model, *kind))]
    WrongModelKind {
        model: String,
        kind: crate::catalog::ModelKind,
    },
    #[error("method not allowed; use {allowed}")]
    MethodNotAllowed { allowed: Cow<'static, str> },
    #[error("the service is temporarily unavailable; retry shortly")]
    Unavailable(#[source] BoxError),
    /// The model answered with an error, or with no text: retrying the same
    /// message is unlikely to help. Raised before anything is charged.
    #[error("the model could not answer this message; nothing was charged")]
    ModelError(#[source] BoxError),
    /// The model is throttled, not ready, or did not answer in time.
    #[error("the model is busy or did not answer in time; nothing was charged, retry shortly")]
    ModelUnavailable(#[source] BoxError),
    /// The model failed after it had read the request (or the reply had
    /// none of its text): what it read and wrote was charged, as its
    /// provider bills it. Status and code are the failure's own.
    #[error("the model did not finish its reply; {charged} tokens were charged for what it read and wrote")]
    ChargedFailure {
        #[source]
        failure: Box<ApiError>,
        charged: Credits,
    },
    #[error("internal server error")]
    Internal(#[source] BoxError),
}

/// What a route says of a model of the other kind: which route serves it.
fn wrong_kind_message(model: &str, kind: crate::catalog::ModelKind) -> String {
    match kind {
        crate::catalog::ModelKind::Embedding => format!(
            "the model `{model}` is an embedding model: POST /v1/embeddings serves it, not this route"
        ),
        crate::catalog::ModelKind::Chat => format!(
            "the model `{model}` is a chat model, not an embedding model; GET /v1/models lists the models served here"
        ),
    }
}

impl ApiError {
    /// A failure on our side, kept as the source for the log.
    pub fn internal(source: impl Into<BoxError>) -> Self {
        ApiError::Internal(source.into())
    }

    pub fn invalid_field(field: impl Into<Cow<'static, str>>, reason: impl Into<String>) -> Self {
        ApiError::InvalidField {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Whether a limit against abuse refused the request.
    pub fn is_throttling(&self) -> bool {
        matches!(
            self,
            ApiError::TooManyAttempts { .. }
                | ApiError::RateLimited { .. }
                | ApiError::TooManyOpenCalls { .. }
                | ApiError::IpRateLimited { .. }
        )
    }

    /// The stable code clients branch on. Never change one once released.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidJson(_) => "invalid_json",
            ApiError::InvalidField { .. } => "invalid_field",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::Unauthorized => "unauthorized",
            ApiError::UsernameTaken => "username_taken",
            ApiError::RegistrationClosed => "registration_closed",
            ApiError::InvalidInvite => "invalid_invite",
            ApiError::InvalidCredentials => "invalid_credentials",
            ApiError::TooManyAttempts { .. } => "too_many_attempts",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::TooManyOpenCalls { .. } => "too_many_open_calls",
            ApiError::IpRateLimited { .. } => "ip_rate_limited",
            ApiError::AccountDisabled => "account_disabled",
            ApiError::InsufficientTokens { .. } => "insufficient_tokens",
            ApiError::KeyBudgetExceeded { .. } => "key_budget_exceeded",
            ApiError::ModelNotAllowed(_) => "model_not_allowed",
            ApiError::IdempotencyKeyReused => "idempotency_key_reused",
            ApiError::IdempotencyKeyInProgress => "idempotency_key_in_progress",
            ApiError::NotFound => "not_found",
            ApiError::KeyNotFound => "key_not_found",
            ApiError::TooManyKeys { .. } => "too_many_keys",
            ApiError::SessionRequired => "session_required",
            ApiError::UnknownModel(_) => "model_not_found",
            ApiError::WrongModelKind { .. } => "wrong_model_kind",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::ModelError(_) => "model_error",
            ApiError::ModelUnavailable(_) => "model_unavailable",
            ApiError::ChargedFailure { failure, .. } => failure.code(),
            ApiError::Internal(_) => "internal_error",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidJson(_)
            | ApiError::InvalidField { .. }
            | ApiError::WrongModelKind { .. } => StatusCode::BAD_REQUEST,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unauthorized | ApiError::InvalidCredentials => StatusCode::UNAUTHORIZED,
            ApiError::UsernameTaken | ApiError::IdempotencyKeyInProgress => StatusCode::CONFLICT,
            ApiError::AccountDisabled => StatusCode::FORBIDDEN,
            ApiError::InsufficientTokens { .. } | ApiError::KeyBudgetExceeded { .. } => {
                StatusCode::PAYMENT_REQUIRED
            }
            ApiError::ModelNotAllowed(_) => StatusCode::FORBIDDEN,
            ApiError::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::NotFound | ApiError::UnknownModel(_) | ApiError::KeyNotFound => {
                StatusCode::NOT_FOUND
            }
            ApiError::TooManyKeys { .. } => StatusCode::CONFLICT,
            ApiError::TooManyAttempts { .. }
            | ApiError::RateLimited { .. }
            | ApiError::TooManyOpenCalls { .. }
            | ApiError::IpRateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::SessionRequired | ApiError::RegistrationClosed | ApiError::InvalidInvite => {
                StatusCode::FORBIDDEN
            }
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Unavailable(_) | ApiError::ModelUnavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::ModelError(_) => StatusCode::BAD_GATEWAY,
            ApiError::ChargedFailure { failure, .. } => failure.status(),
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The JSON body: `{"error": code, "message": text}` plus the fields a
    /// client needs to act on this particular error.
    pub fn body(&self) -> Value {
        let mut body = Map::new();
        body.insert("error".into(), json!(self.code()));
        body.insert("message".into(), json!(self.to_string()));
        match self {
            ApiError::InvalidField { field, .. } => {
                body.insert("field".into(), json!(field));
            }
            ApiError::InsufficientTokens { balance, cost } => {
                body.insert("tokens".into(), json!(balance));
                body.insert("cost".into(), json!(cost));
            }
            ApiError::PayloadTooLarge { limit } | ApiError::TooManyKeys { limit } => {
                body.insert("limit".into(), json!(limit));
            }
            ApiError::ChargedFailure { charged, .. } => {
                body.insert("charged".into(), json!(charged));
            }
            ApiError::KeyBudgetExceeded {
                budget,
                period,
                left,
                cost,
                resets_at,
            } => {
                body.insert("budget".into(), json!(budget));
                body.insert("period".into(), json!(period.as_str()));
                body.insert("left".into(), json!(left));
                body.insert("cost".into(), json!(cost));
                body.insert("resets_at".into(), json!(resets_at.map(Timestamp::iso8601)));
            }
            ApiError::ModelNotAllowed(model) => {
                body.insert("model".into(), json!(model));
            }
            ApiError::WrongModelKind { model, kind } => {
                body.insert("model".into(), json!(model));
                body.insert("kind".into(), json!(kind.as_str()));
            }
            _ => {}
        }
        Value::Object(body)
    }

    pub fn into_response(self) -> Response<Body> {
        self.log();
        let mut response = json_response(self.status(), &self.body());
        self.add_headers(response.headers_mut());
        response
    }

    /// Logs the error once, as it leaves for the client: a server-side cause
    /// at warn or error, a refusal at info.
    pub fn log(&self) {
        match self {
            // The source chain goes to the log, never to the client.
            ApiError::Unavailable(source) => {
                tracing::warn!(error = %ErrorChain(source.as_ref()), "storage unavailable")
            }
            ApiError::ModelError(source) => {
                tracing::warn!(error = %ErrorChain(source.as_ref()), "model failed")
            }
            ApiError::ModelUnavailable(source) => {
                tracing::warn!(error = %ErrorChain(source.as_ref()), "model unavailable")
            }
            ApiError::ChargedFailure { failure, charged } => {
                tracing::info!(
                    charged = charged.get(),
                    "the model failed after reading the request"
                );
                failure.log()
            }
            ApiError::Internal(source) => {
                tracing::error!(error = %ErrorChain(source.as_ref()), "internal error")
            }
            _ => tracing::info!(code = self.code(), "request refused"),
        }
    }

    /// The headers a client needs to act on this error: the scheme to
    /// authenticate with, when to retry, the methods allowed.
    pub fn add_headers(&self, headers: &mut HeaderMap) {
        match self {
            // RFC 9110: every 401 names the scheme; DRF clients know "Token".
            ApiError::Unauthorized | ApiError::InvalidCredentials => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Token"));
            }
            ApiError::Unavailable(_) | ApiError::IdempotencyKeyInProgress => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
            }
            ApiError::ModelUnavailable(_) => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(MODEL_RETRY_AFTER_SECONDS),
                );
            }
            ApiError::TooManyAttempts { retry_after }
            | ApiError::RateLimited { retry_after }
            | ApiError::TooManyOpenCalls { retry_after }
            | ApiError::IpRateLimited { retry_after } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
            }
            ApiError::ChargedFailure { failure, charged } => {
                failure.add_headers(headers);
                headers.insert(
                    crate::response::TOKENS_CHARGED,
                    HeaderValue::from(charged.get()),
                );
            }
            // When the budget starts over, for clients that read headers
            // only (OpenAI's SDKs): absent for a total budget.
            ApiError::KeyBudgetExceeded {
                resets_at: Some(at),
                ..
            } => {
                if let Ok(value) = HeaderValue::from_str(&at.iso8601()) {
                    headers.insert(BUDGET_RESETS_AT, value);
                }
            }
            ApiError::MethodNotAllowed { allowed } => {
                if let Ok(value) = HeaderValue::from_str(allowed) {
                    headers.insert(header::ALLOW, value);
                }
            }
            _ => {}
        }
    }
}

/// Displays an error with its causes, `a: b: c`, for one log field.
struct ErrorChain<'a>(&'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut next = self.0.source();
        while let Some(cause) = next {
            write!(f, ": {cause}")?;
            next = cause.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_of(response: &Response<Body>) -> Value {
        serde_json::from_slice(response.body().as_ref()).unwrap()
    }

    #[test]
    fn every_error_maps_to_its_status_and_code() {
        let cases: Vec<(ApiError, u16, &str)> = vec![
            (ApiError::InvalidJson("x".into()), 400, "invalid_json"),
            (
                ApiError::invalid_field("username", "bad"),
                400,
                "invalid_field",
            ),
            (
                ApiError::PayloadTooLarge { limit: 1 },
                413,
                "payload_too_large",
            ),
            (ApiError::Unauthorized, 401, "unauthorized"),
            (ApiError::UsernameTaken, 409, "username_taken"),
            (ApiError::RegistrationClosed, 403, "registration_closed"),
            (ApiError::InvalidInvite, 403, "invalid_invite"),
            (ApiError::InvalidCredentials, 401, "invalid_credentials"),
            (ApiError::AccountDisabled, 403, "account_disabled"),
            (
                ApiError::InsufficientTokens {
                    balance: Credits::new(0),
                    cost: Credits::new(100),
                },
                402,
                "insufficient_tokens",
            ),
            (
                ApiError::IdempotencyKeyReused,
                422,
                "idempotency_key_reused",
            ),
            (
                ApiError::IdempotencyKeyInProgress,
                409,
                "idempotency_key_in_progress",
            ),
            (ApiError::NotFound, 404, "not_found"),
            (ApiError::UnknownModel("m".into()), 404, "model_not_found"),
            (
                ApiError::WrongModelKind {
                    model: "titan".into(),
                    kind: crate::catalog::ModelKind::Embedding,
                },
                400,
                "wrong_model_kind",
            ),
            (ApiError::KeyNotFound, 404, "key_not_found"),
            (
                ApiError::TooManyAttempts { retry_after: 4 },
                429,
                "too_many_attempts",
            ),
            (
                ApiError::RateLimited { retry_after: 9 },
                429,
                "rate_limited",
            ),
            (
                ApiError::TooManyOpenCalls { retry_after: 1 },
                429,
                "too_many_open_calls",
            ),
            (
                ApiError::ChargedFailure {
                    failure: Box::new(ApiError::ModelUnavailable("slow".into())),
                    charged: Credits::new(7),
                },
                503,
                "model_unavailable",
            ),
            (
                ApiError::IpRateLimited { retry_after: 30 },
                429,
                "ip_rate_limited",
            ),
            (ApiError::TooManyKeys { limit: 10 }, 409, "too_many_keys"),
            (ApiError::SessionRequired, 403, "session_required"),
            (
                ApiError::MethodNotAllowed {
                    allowed: "POST".into(),
                },
                405,
                "method_not_allowed",
            ),
            (ApiError::Unavailable("down".into()), 503, "unavailable"),
            (ApiError::ModelError("refused".into()), 502, "model_error"),
            (
                ApiError::ModelUnavailable("throttled".into()),
                503,
                "model_unavailable",
            ),
            (ApiError::Internal("bug".into()), 500, "internal_error"),
        ];
        for (error, status, code) in cases {
            let response = error.into_response();
            assert_eq!(response.status().as_u16(), status, "{code}");
            assert_eq!(response.headers()["content-type"], "application/json");
            let body = body_of(&response);
            assert_eq!(body["error"], code);
            assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
        }
    }

    #[test]
    fn insufficient_tokens_carries_the_balance() {
        let body = body_of(
            &ApiError::InsufficientTokens {
                balance: Credits::new(40),
                cost: Credits::new(100),
            }
            .into_response(),
        );
        assert_eq!(body["tokens"], 40);
        assert_eq!(body["cost"], 100);
    }

    #[test]
    fn a_server_side_cause_never_reaches_the_client() {
        let response = ApiError::Internal("secret table detail".into()).into_response();
        let text = String::from_utf8(response.body().to_vec()).unwrap();
        assert!(!text.contains("secret table detail"), "{text}");
    }

    #[test]
    fn unavailable_says_when_to_retry_and_unauthorized_names_the_scheme() {
        let response = ApiError::Unavailable("x".into()).into_response();
        assert_eq!(response.headers()["retry-after"], "1");
        let response = ApiError::Unauthorized.into_response();
        assert_eq!(response.headers()["www-authenticate"], "Token");
    }

    #[test]
    fn a_busy_model_says_when_to_retry_and_a_failed_one_does_not() {
        let response = ApiError::ModelUnavailable("x".into()).into_response();
        assert_eq!(response.headers()["retry-after"], "5");
        let response = ApiError::ModelError("x".into()).into_response();
        assert!(response.headers().get("retry-after").is_none());
    }

    #[test]
    fn a_model_failure_keeps_its_cause_from_the_client() {
        for error in [
            ApiError::ModelError("ValidationException: prompt detail".into()),
            ApiError::ModelUnavailable("ThrottlingException: quota detail".into()),
        ] {
            let response = error.into_response();
            let text = String::from_utf8(response.body().to_vec()).unwrap();
            assert!(!text.contains("detail"), "{text}");
        }
    }

    #[test]
    fn invalid_field_names_the_field() {
        let body = body_of(&ApiError::invalid_field("password", "too short").into_response());
        assert_eq!(body["field"], "password");
        assert_eq!(body["message"], "password: too short");
    }
}
