//! `/keys/`: API keys for programs. `POST` makes one (shown once),
//! `GET` lists them (never the key), `DELETE /keys/{id}` revokes one. Only
//! a login session manages keys; a key works wherever a session token does.

use chat_core::clock::Timestamp;
use chat_core::domain::{SessionId, TokenKind, VerifiedToken, API_KEY_PREFIX};
use chat_core::http::{deadline, json_body, whole_number};
use chat_core::response::json_response;
use chat_core::store::{may_manage_keys, KeyInfo, NewKey, NEVER};
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
        (_, "") => Err(ApiError::MethodNotAllowed {
            allowed: ALLOWED.into(),
        }),
        _ => Err(ApiError::MethodNotAllowed {
            allowed: "DELETE".into(),
        }),
    }
}

#[derive(Deserialize)]
struct CreateBody {
    name: Option<Value>,
    expires_in_days: Option<Value>,
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
    // An id not of the form keys are given is malformed input (openapi.yaml
    // `KeyId`); a well-formed one that names no key of the caller's is 404.
    let id = SessionId::parse(id).ok_or_else(|| {
        ApiError::invalid_field(
            "id",
            "not a key's id: 22 base64url characters, as POST /keys/ gives it",
        )
    })?;
    app.store
        .delete_key(&owner, id.as_str(), Timestamp::now())
        .await?;
    let mut response = Response::new(Body::Empty);
    *response.status_mut() = StatusCode::NO_CONTENT;
    Ok(response)
}

fn view(key: &KeyInfo) -> Value {
    json!({
        "id": key.id,
        "name": key.name,
        "prefix": key.prefix,
        "created_at": key.created_at,
        "expires_at": key.expires_at.and_then(Timestamp::from_unix_seconds).map(Timestamp::iso8601),
        "last_used": key.last_used,
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
}
