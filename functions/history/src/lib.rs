//! `GET /chats/`: the caller's saved chats, newest first, a page at a time.
//! Free: reading history costs no tokens.

use chat_core::clock::Timestamp;
use chat_core::domain::Cursor;
use chat_core::http::require_method;
use chat_core::response::json_response;
use chat_core::store::HistoryEntry;
use chat_core::{ApiError, App};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Error, Request, RequestExt, Response};
use serde_json::{json, Value};

pub const DEFAULT_LIMIT: u32 = 20;
pub const MAX_LIMIT: u32 = 100;

pub async fn handle(app: &App, request: Request) -> Result<Response<Body>, Error> {
    let started = std::time::Instant::now();
    app.answer("history", started, chats(app, request).await)
}

async fn chats(app: &App, request: Request) -> Result<Response<Body>, ApiError> {
    require_method(&request, Method::GET)?;
    let token = app.auth.authenticate(&request).await?;
    let query = request.query_string_parameters();
    let limit = match single(query.all("limit"), "limit")? {
        None => DEFAULT_LIMIT,
        // Digits only: `parse` would also take "+5".
        Some(raw) => Some(raw)
            .filter(|raw| raw.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|raw| raw.parse::<u32>().ok())
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::invalid_field(
                    "limit",
                    format!("must be a whole number from 1 to {MAX_LIMIT}"),
                )
            })?,
    };
    let cursor = single(query.all("cursor"), "cursor")?
        .map(|raw| Cursor::parse(raw).map_err(|why| ApiError::invalid_field("cursor", why)))
        .transpose()?;
    let page = app
        .store
        .history(&token, limit, cursor.as_ref(), Timestamp::now())
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "chats": page.chats.iter().map(entry_json).collect::<Vec<_>>(),
            "next_cursor": page.next.map(|cursor| cursor.encode()),
        }),
    ))
}

/// A parameter given once at most: `?limit=1&limit=50` is ambiguous, and
/// guessing which one the client meant would page wrongly without a word.
fn single<'a>(
    values: Option<Vec<&'a str>>,
    name: &'static str,
) -> Result<Option<&'a str>, ApiError> {
    match values.as_deref() {
        None | Some([]) => Ok(None),
        Some([one]) => Ok(Some(one)),
        Some(_) => Err(ApiError::invalid_field(name, "must be given once")),
    }
}

fn entry_json(entry: &HistoryEntry) -> Value {
    json!({
        "chat_id": entry.chat_id,
        "message": entry.message,
        "response": entry.response,
        "timestamp": entry.timestamp,
        "cost": entry.cost,
    })
}
