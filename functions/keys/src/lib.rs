//! `/keys/`: API keys for programs. `POST` makes one (shown once),
//! `GET` lists them (never the key), `PATCH /keys/{id}` changes its budget
//! and models, `DELETE /keys/{id}` revokes one. Only a login session
//! manages keys; a key works wherever a session token does, within its
//! budget and models.

use chat_core::clock::Timestamp;
use chat_core::credits::Credits;
use chat_core::domain::{Budget, Period, SessionId, TokenKind, VerifiedToken, API_KEY_PREFIX};
use chat_core::http::{deadline, json_body, whole_number};
use chat_core::response::json_response;
use chat_core::store::{may_manage_keys, KeyInfo, KeyLimits, NewKey, NEVER};
use chat_core::{ApiError, App};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Error, Request, Response};
use serde::Deserialize;
use serde_json::{json, Value};

/// The longest a key may be asked to last: ten years.
pub const MAX_EXPIRES_IN_DAYS: u64 = 3650;
/// A key's name: what its owner calls it, 1-64 printable characters.
pub const MAX_NAME_CHARS: usize = 64;
/// Characters of the key's random part shown in its prefix: enough to tell
/// a user's keys apart, far too few to guess the rest.
const PREFIX_SECRET_CHARS: usize = 6;
/// Models one key may be limited to: more than a catalog holds.
pub const MAX_KEY_MODELS: usize = 20;
/// A model id in a key's list: as long as a catalog id may be.
const MAX_MODEL_CHARS: usize = 128;
/// The largest budget: what an integer in the API stays exact at.
pub const MAX_BUDGET_TOKENS: u64 = 1 << 53;

const ALLOWED: &str = "POST, GET";

pub async fn handle(app: &App, request: Request) -> Result<Response<Body>, Error> {
    let started = std::time::Instant::now();
    app.answer("keys", started, keys(app, request).await)
}

async fn keys(app: &App, request: Request) -> Result<Response<Body>, ApiError> {
    let path = request.uri().path().trim_end_matches('/');
    let id = path
        .strip_prefix("/keys")
        .unwrap_or_default()
        .trim_start_matches('/');
    match (request.method(), id) {
        (&Method::POST, "") => create(app, &request).await,
        (&Method::GET, "") => list(app, &request).await,
        (&Method::DELETE, id) if !id.is_empty() => delete(app, &request, id).await,
        (&Method::PATCH, id) if !id.is_empty() => patch(app, &request, id).await,
        (_, "") => Err(ApiError::MethodNotAllowed {
            allowed: ALLOWED.into(),
        }),
        _ => Err(ApiError::MethodNotAllowed {
            allowed: "PATCH, DELETE".into(),
        }),
    }
}

#[derive(Deserialize)]
struct CreateBody {
    name: Option<Value>,
    expires_in_days: Option<Value>,
    budget: Option<Value>,
    models: Option<Value>,
}

/// `PATCH`'s body: a field left out keeps the key's own; `null` removes
/// the limit. (`Option<Option<_>>` tells the two apart.)
#[derive(Deserialize)]
struct PatchBody {
    #[serde(default, deserialize_with = "present")]
    budget: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    models: Option<Value>,
}

/// A field that is present, `null` included, as `Some`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

async fn owner(app: &App, request: &Request) -> Result<VerifiedToken, ApiError> {
    let token = app.auth.authenticate(request).await?;
    may_manage_keys(&token)?;
    Ok(token)
}

async fn create(app: &App, request: &Request) -> Result<Response<Body>, ApiError> {
    let owner = owner(app, request).await?;
    let body: CreateBody = json_body(request)?;
    let name = name_of(body.name)?;
    let days = days_of(body.expires_in_days)?;
    let budget = budget_of(body.budget.unwrap_or(Value::Null))?;
    let models = models_of(body.models.unwrap_or(Value::Null))?;
    let now = Timestamp::now();
    let expires_at = days.map_or(NEVER, |d| now.unix_seconds() + d as i64 * 86_400);
    let key = app
        .auth
        .issue_kind(TokenKind::ApiKey, owner.username(), expires_at)
        .await?;
    let prefix = prefix_of(key.expose());
    let new = NewKey {
        key: &key,
        name: &name,
        prefix: &prefix,
        created: now,
        budget,
        models: models.as_deref(),
    };
    app.store
        .create_key(&owner, &new, deadline(request))
        .await?;
    let info = KeyInfo {
        id: key.session_id().as_str().to_owned(),
        name,
        prefix,
        created_at: now.iso8601(),
        expires_at: (expires_at < NEVER).then_some(expires_at),
        last_used: None,
        budget,
        spent: Credits::ZERO,
        resets_at: budget.and_then(|b| b.period.resets_at(now)),
        models,
    };
    let mut body = view(&info);
    body["key"] = json!(key.expose());
    Ok(json_response(StatusCode::CREATED, &body))
}

async fn list(app: &App, request: &Request) -> Result<Response<Body>, ApiError> {
    let owner = owner(app, request).await?;
    let keys = app.store.list_keys(&owner, Timestamp::now()).await?;
    let keys: Vec<Value> = keys.iter().map(view).collect();
    Ok(json_response(StatusCode::OK, &json!({ "keys": keys })))
}

async fn delete(app: &App, request: &Request, id: &str) -> Result<Response<Body>, ApiError> {
    let owner = owner(app, request).await?;
    let id = key_id(id)?;
    app.store
        .delete_key(&owner, id.as_str(), Timestamp::now())
        .await?;
    let mut response = Response::new(Body::Empty);
    *response.status_mut() = StatusCode::NO_CONTENT;
    Ok(response)
}

async fn patch(app: &App, request: &Request, id: &str) -> Result<Response<Body>, ApiError> {
    let owner = owner(app, request).await?;
    let body: PatchBody = json_body(request)?;
    let budget = body.budget.map(budget_of).transpose()?;
    let models = body.models.map(models_of).transpose()?;
    let id = key_id(id)?;
    let limits = KeyLimits {
        budget,
        models: models.as_ref().map(|m| m.as_deref()),
    };
    let key = app
        .store
        .update_key(&owner, id.as_str(), &limits, Timestamp::now())
        .await?;
    Ok(json_response(StatusCode::OK, &view(&key)))
}

fn view(key: &KeyInfo) -> Value {
    json!({
        "id": key.id,
        "name": key.name,
        "prefix": key.prefix,
        "created_at": key.created_at,
        "expires_at": key.expires_at.and_then(Timestamp::from_unix_seconds).map(Timestamp::iso8601),
        "last_used": key.last_used,
        "budget": key.budget.map(|b| json!({"tokens": b.tokens, "period": b.period.as_str()})),
        "spent": key.spent,
        "resets_at": key.resets_at.map(Timestamp::iso8601),
        "models": key.models,
    })
}

/// `{"tokens": N, "period": "day|week|month|total"}`, or null for none.
fn budget_of(raw: Value) -> Result<Option<Budget>, ApiError> {
    let bad = || {
        ApiError::invalid_field(
            "budget",
            format!(
                "must be null or {{\"tokens\": a whole number from 1 to {MAX_BUDGET_TOKENS}, \"period\": \"day\", \"week\", \"month\" or \"total\"}}"
            ),
        )
    };
    let object = match raw {
        Value::Null => return Ok(None),
        Value::Object(object) => object,
        _ => return Err(bad()),
    };
    if object.keys().any(|k| k != "tokens" && k != "period") {
        return Err(bad());
    }
    let tokens = object
        .get("tokens")
        .and_then(whole_number)
        .filter(|t| (1..=MAX_BUDGET_TOKENS).contains(t))
        .ok_or_else(bad)?;
    let period = object
        .get("period")
        .and_then(Value::as_str)
        .and_then(Period::parse)
        .ok_or_else(bad)?;
    Ok(Some(Budget {
        tokens: Credits::new(tokens),
        period,
    }))
}

/// A non-empty list of distinct model ids, or null for any model. An id
/// the catalog does not serve is allowed: a catalog may add it later.
fn models_of(raw: Value) -> Result<Option<Vec<String>>, ApiError> {
    let bad = || {
        ApiError::invalid_field(
            "models",
            format!("must be null or a list of 1-{MAX_KEY_MODELS} distinct model ids of 1-{MAX_MODEL_CHARS} printable characters"),
        )
    };
    let list = match raw {
        Value::Null => return Ok(None),
        Value::Array(list) => list,
        _ => return Err(bad()),
    };
    if list.is_empty() || list.len() > MAX_KEY_MODELS {
        return Err(bad());
    }
    let mut models: Vec<String> = Vec::with_capacity(list.len());
    for model in list {
        let Value::String(model) = model else {
            return Err(bad());
        };
        let length = model.chars().count();
        if length == 0
            || length > MAX_MODEL_CHARS
            || model.chars().any(|c| c.is_control() || c.is_whitespace())
            || models.contains(&model)
        {
            return Err(bad());
        }
        models.push(model);
    }
    Ok(Some(models))
}

/// A key's id from its path: one not of the form keys are given is
/// malformed input (openapi.yaml `KeyId`), 400; a well-formed one that
/// names no key of the caller's is the store's 404.
fn key_id(id: &str) -> Result<SessionId, ApiError> {
    SessionId::parse(id).ok_or_else(|| {
        ApiError::invalid_field(
            "id",
            "not a key's id: 22 base64url characters, as POST /keys/ gives it",
        )
    })
}

fn name_of(raw: Option<Value>) -> Result<String, ApiError> {
    let name = match raw {
        Some(Value::String(name)) => name,
        None | Some(Value::Null) => return Err(ApiError::invalid_field("name", "is required")),
        Some(_) => return Err(ApiError::invalid_field("name", "must be a string")),
    };
    let length = name.chars().count();
    if name.trim().is_empty() || length > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(ApiError::invalid_field(
            "name",
            format!("must be 1-{MAX_NAME_CHARS} characters, not blank, without control characters"),
        ));
    }
    Ok(name)
}

fn days_of(raw: Option<Value>) -> Result<Option<u64>, ApiError> {
    match raw {
        None | Some(Value::Null) => Ok(None),
        Some(value) => match whole_number(&value) {
            Some(days) if (1..=MAX_EXPIRES_IN_DAYS).contains(&days) => Ok(Some(days)),
            _ => Err(ApiError::invalid_field(
                "expires_in_days",
                format!("must be a whole number of days from 1 to {MAX_EXPIRES_IN_DAYS}"),
            )),
        },
    }
}

/// `sk-`, the user part, the dot and the first characters of the random
/// part: what a list shows so its owner can tell which key is which.
fn prefix_of(key: &str) -> String {
    let body = key.strip_prefix(API_KEY_PREFIX).unwrap_or(key);
    let dot = body.find('.').map_or(body.len(), |i| i + 1);
    let end = (dot + PREFIX_SECRET_CHARS).min(body.len());
    format!("{API_KEY_PREFIX}{}", &body[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prefix_shows_the_user_and_six_random_characters() {
        assert_eq!(prefix_of("sk-YWxpY2U.AbCdEfGhIj"), "sk-YWxpY2U.AbCdEf");
    }

    #[test]
    fn names_and_days_are_checked() {
        assert!(name_of(Some(json!("ci"))).is_ok());
        for bad in [
            json!(""),
            json!("  "),
            json!(3),
            json!("a".repeat(65)),
            json!("a\nb"),
        ] {
            assert!(name_of(Some(bad.clone())).is_err(), "{bad}");
        }
        assert!(name_of(None).is_err());
        assert_eq!(days_of(None).unwrap(), None);
        assert_eq!(days_of(Some(json!(30))).unwrap(), Some(30));
        assert_eq!(days_of(Some(json!(30.0))).unwrap(), Some(30));
        for bad in [json!(0), json!(3651), json!(1.5), json!("30")] {
            assert!(days_of(Some(bad.clone())).is_err(), "{bad}");
        }
    }

    #[test]
    fn budgets_and_model_lists_are_checked() {
        assert_eq!(
            budget_of(json!({"tokens": 250, "period": "day"})).unwrap(),
            Some(Budget {
                tokens: Credits::new(250),
                period: Period::Day
            })
        );
        assert_eq!(budget_of(Value::Null).unwrap(), None);
        for bad in [
            json!({"tokens": 0, "period": "day"}),
            json!({"tokens": 1.5, "period": "day"}),
            json!({"tokens": 10, "period": "year"}),
            json!({"tokens": 10}),
            json!({"tokens": 10, "period": "day", "extra": 1}),
            json!(250),
        ] {
            assert_eq!(
                budget_of(bad.clone()).unwrap_err().code(),
                "invalid_field",
                "{bad}"
            );
        }
        assert_eq!(
            models_of(json!(["haiku"])).unwrap(),
            Some(vec!["haiku".into()])
        );
        assert_eq!(models_of(Value::Null).unwrap(), None);
        for bad in [
            json!([]),
            json!(["a", "a"]),
            json!([""]),
            json!([3]),
            json!("haiku"),
        ] {
            assert_eq!(
                models_of(bad.clone()).unwrap_err().code(),
                "invalid_field",
                "{bad}"
            );
        }
    }
}
