//! `/balance/`: `GET` the caller's token balance and the threshold their
//! balance alert fires below; `PATCH` sets or clears that threshold
//! (`{"alert_below": 500}`, `null` to clear). The alert itself is sent by
//! the `alerts` function from the users table's stream, not here.

use chat_core::alerts::MAX_ALERT_BELOW;
use chat_core::clock::Timestamp;
use chat_core::http::{json_body, whole_number};
use chat_core::response::json_response;
use chat_core::store::BalanceView;
use chat_core::{ApiError, App};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Error, Request, Response};
use serde::Deserialize;
use serde_json::{json, Value};

pub async fn handle(app: &App, request: Request) -> Result<Response<Body>, Error> {
    let started = std::time::Instant::now();
    app.answer("balance", started, balance(app, request).await)
}

async fn balance(app: &App, request: Request) -> Result<Response<Body>, ApiError> {
    let view = match *request.method() {
        Method::GET => {
            let token = app.auth.authenticate(&request).await?;
            app.store.balance_view(&token, Timestamp::now()).await?
        }
        Method::PATCH => {
            // The body first: bad input is refused before any call.
            let below = alert_below(&request)?;
            let token = app.auth.authenticate(&request).await?;
            app.store
                .set_own_alert_below(&token, below, Timestamp::now())
                .await?
        }
        _ => {
            return Err(ApiError::MethodNotAllowed {
                allowed: "GET, PATCH".into(),
            })
        }
    };
    Ok(json_response(StatusCode::OK, &shown(view)))
}

/// The body of every answer: `alert_below` only when one is set, so the
/// answer of an account without one is the contract's `{"tokens": n}`.
fn shown(view: BalanceView) -> Value {
    match view.alert_below {
        Some(below) => json!({"tokens": view.tokens, "alert_below": below}),
        None => json!({"tokens": view.tokens}),
    }
}

/// `PATCH`'s body; `null` is present (`Some(Null)`): it clears.
#[derive(Deserialize)]
struct PatchBody {
    #[serde(default, deserialize_with = "present")]
    alert_below: Option<Value>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// `PATCH`'s threshold: a whole number from 0 to [`MAX_ALERT_BELOW`], or
/// `null` to clear it; the field is required, so an empty body changes
/// nothing by mistake.
fn alert_below(request: &Request) -> Result<Option<u64>, ApiError> {
    let body: PatchBody = json_body(request)?;
    let bad = || {
        ApiError::invalid_field(
            "alert_below",
            format!("must be a whole number from 0 to {MAX_ALERT_BELOW}, or null"),
        )
    };
    match body.alert_below {
        None => Err(ApiError::invalid_field(
            "alert_below",
            "is required (null clears it)",
        )),
        Some(Value::Null) => Ok(None),
        Some(value) => whole_number(&value)
            .filter(|b| *b <= MAX_ALERT_BELOW)
            .map(Some)
            .ok_or_else(bad),
    }
}
