//! OpenAI's conventions for the `/v1/` routes: the same [`ApiError`]s as
//! everywhere else, in the error shape OpenAI's SDKs parse
//! (`{"error": {"message", "type", "param", "code"}}`), with the status
//! codes they map to their exception classes.

use lambda_http::http::{header, HeaderMap, HeaderValue, StatusCode};
use serde_json::{json, Value};

use lambda_http::Response;

use crate::error::ApiError;
use crate::responder::DUMMY_MODEL;

/// OpenAI's SDKs honour this header before their own retry rules: a 429
/// for an empty balance must not be retried (it stays empty), a 503 may.
pub const SHOULD_RETRY: &str = "x-should-retry";

/// An error as OpenAI's clients expect it.
pub struct OpenAiError {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl OpenAiError {
    /// The error, logged once, in OpenAI's shape.
    pub fn of(error: &ApiError) -> Self {
        error.log();
        let status = match error {
            // OpenAI answers an exhausted quota with 429, which its SDKs
            // raise as RateLimitError; 402 would be an unknown APIStatusError.
            ApiError::InsufficientTokens { .. } | ApiError::KeyBudgetExceeded { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            _ => error.status(),
        };
        let (kind, code) = match error {
            ApiError::Unauthorized => ("invalid_request_error", "invalid_api_key"),
            ApiError::InsufficientTokens { .. } => ("insufficient_quota", "insufficient_quota"),
            // The same kind as an empty balance (not retried), with the
            // key's own code, so a program can tell the two apart.
            ApiError::KeyBudgetExceeded { .. } => ("insufficient_quota", "key_budget_exceeded"),
            // OpenAI's own names for a request-rate limit.
            ApiError::RateLimited { .. } | ApiError::TooManyOpenCalls { .. } => {
                ("requests", "rate_limit_exceeded")
            }
            _ if status.is_server_error() => ("server_error", error.code()),
            _ => ("invalid_request_error", error.code()),
        };
        let param = match error {
            ApiError::InvalidField { field, .. } => json!(field),
            ApiError::UnknownModel(_)
            | ApiError::ModelNotAllowed(_)
            | ApiError::WrongModelKind { .. } => json!("model"),
            _ => Value::Null,
        };
        let mut headers = HeaderMap::new();
        error.add_headers(&mut headers);
        if matches!(error, ApiError::Unauthorized) {
            // What the SDKs send; `Token` stays valid too.
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        // Retried only where nothing can have been charged: a busy model
        // (refused before any charge) or a per-user cap. A store that did
        // not answer (`unavailable`) may have charged after all, and a
        // retry without an idempotency key could charge twice; a model that
        // failed after reading the request was charged, and a retry is a
        // new call: the client decides, with its balance and history at
        // hand.
        let retry = matches!(
            error,
            ApiError::ModelUnavailable(_)
                | ApiError::IdempotencyKeyInProgress
                | ApiError::RateLimited { .. }
                | ApiError::TooManyOpenCalls { .. }
        );
        headers.insert(
            SHOULD_RETRY,
            HeaderValue::from_static(if retry { "true" } else { "false" }),
        );
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let mut body = json!({
            "error": {
                "message": error.to_string(),
                "type": kind,
                "param": param,
                "code": code,
            }
        });
        if let ApiError::KeyBudgetExceeded { resets_at, .. } = error {
            // The seed shape's field, beside OpenAI's: when to come back.
            body["error"]["resets_at"] = json!(resets_at.map(crate::clock::Timestamp::iso8601));
        }
        OpenAiError {
            status,
            headers,
            body,
        }
    }
}

impl OpenAiError {
    /// The response, with any body type that holds a string: the buffered
    /// one of `lambda_http` and the streamed one alike.
    pub fn into_response<B: From<String>>(self) -> Response<B> {
        let mut response = Response::new(B::from(self.body.to_string()));
        *response.status_mut() = self.status;
        *response.headers_mut() = self.headers;
        response
    }
}

/// A model the OpenAI route serves, and what a call to it costs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedModel {
    pub id: String,
    pub pricing: crate::pricing::Pricing,
    /// Chat, or embeddings: which routes take it.
    pub kind: crate::catalog::ModelKind,
}

/// The models on the OpenAI route: the catalog's, each at its own price,
/// or, without a catalog, `MODEL_ID` when a Bedrock model answers (else
/// [`DUMMY_MODEL`]) at `pricing`, the older settings' price. Read without
/// the Bedrock client, so `/v1/models` does not link it.
pub fn listed_models(
    get: impl Fn(&str) -> Option<String>,
    pricing: crate::pricing::Pricing,
) -> Result<Vec<ListedModel>, String> {
    if let Some(catalog) = crate::catalog::Catalog::from_lookup(&get)? {
        let served = catalog.models.into_iter();
        return Ok(served
            .map(|m| ListedModel {
                id: m.id,
                pricing: m.pricing,
                kind: m.kind,
            })
            .collect());
    }
    let model_id = get("MODEL_ID")
        .map(|id| id.trim().to_owned())
        .filter(|id| !id.is_empty());
    let Some(id) = model_id else {
        // The dummy, and the local embedder beside it (`make run`).
        let mut listed = vec![ListedModel {
            id: DUMMY_MODEL.to_owned(),
            pricing,
            kind: crate::catalog::ModelKind::Chat,
        }];
        if let Some(pricing) = legacy_embedding_pricing(pricing) {
            listed.push(ListedModel {
                id: crate::embedder::LOCAL_EMBEDDING_MODEL.to_owned(),
                pricing,
                kind: crate::catalog::ModelKind::Embedding,
            });
        }
        return Ok(listed);
    };
    Ok(vec![ListedModel {
        id,
        pricing,
        kind: crate::catalog::ModelKind::Chat,
    }])
}

/// The price of the local embedder a deployment without a catalog serves
/// beside the dummy: the dummy's flat price per chat, per 1000 input
/// tokens (words). `None` under usage pricing, which needs a Bedrock model
/// (`MODEL_ID`) and so is never a dummy's deployment.
pub fn legacy_embedding_pricing(
    pricing: crate::pricing::Pricing,
) -> Option<crate::pricing::Pricing> {
    match pricing {
        crate::pricing::Pricing::Flat(cost) => Some(crate::pricing::Pricing::Usage(
            crate::pricing::UsagePrices {
                input_per_1000: cost,
                ..crate::pricing::UsagePrices::default()
            },
        )),
        crate::pricing::Pricing::Usage(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credits::Credits;

    #[test]
    fn an_empty_balance_is_openais_insufficient_quota_and_not_retried() {
        let e = OpenAiError::of(&ApiError::InsufficientTokens {
            balance: Credits::new(0),
            cost: Credits::new(100),
        });
        assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(e.body["error"]["type"], "insufficient_quota");
        assert_eq!(e.body["error"]["code"], "insufficient_quota");
        assert_eq!(e.headers[SHOULD_RETRY], "false");
    }

    #[test]
    fn a_bad_token_is_invalid_api_key_with_the_bearer_scheme() {
        let e = OpenAiError::of(&ApiError::Unauthorized);
        assert_eq!(e.status, StatusCode::UNAUTHORIZED);
        assert_eq!(e.body["error"]["code"], "invalid_api_key");
        assert_eq!(e.headers[header::WWW_AUTHENTICATE], "Bearer");
    }

    #[test]
    fn a_bad_field_names_its_param_and_server_errors_say_so() {
        let e = OpenAiError::of(&ApiError::invalid_field("temperature", "too hot"));
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(e.body["error"]["param"], "temperature");
        assert_eq!(e.body["error"]["type"], "invalid_request_error");
        let e = OpenAiError::of(&ApiError::ModelUnavailable("quota detail".into()));
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(e.body["error"]["type"], "server_error");
        assert_eq!(e.headers[SHOULD_RETRY], "true");
        assert_eq!(e.headers[header::RETRY_AFTER], "5");
        assert!(!e.body.to_string().contains("quota detail"));
    }

    #[test]
    fn an_unknown_model_is_model_not_found() {
        let e = OpenAiError::of(&ApiError::UnknownModel("gpt-x".into()));
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        assert_eq!(e.body["error"]["code"], "model_not_found");
        assert_eq!(e.body["error"]["param"], "model");
    }
}
