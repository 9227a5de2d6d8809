//! `GET /balance/`: the caller's token balance.

use chat_core::clock::Timestamp;
use chat_core::http::require_method;
use chat_core::response::json_response;
use chat_core::{ApiError, App};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Error, Request, Response};
use serde_json::json;

pub async fn handle(app: &App, request: Request) -> Result<Response<Body>, Error> {
    let started = std::time::Instant::now();
    app.answer("balance", started, balance(app, request).await)
}

async fn balance(app: &App, request: Request) -> Result<Response<Body>, ApiError> {
    require_method(&request, Method::GET)?;
    let token = app.auth.authenticate(&request).await?;
    let tokens = app.store.balance(&token, Timestamp::now()).await?;
    Ok(json_response(StatusCode::OK, &json!({"tokens": tokens})))
}
