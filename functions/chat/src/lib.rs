//! `POST /chat/`: answers a message, charging its cost and saving the chat
//! in one atomic write.

use chat_core::clock::Instant;
use chat_core::domain::ChatMessage;
use chat_core::http::{
    auth_token, json_body, json_response, require_method, required_string, respond,
};
use chat_core::store::ChatRecord;
use chat_core::{ApiError, App};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Error, Request, Response};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
struct ChatBody {
    message: Option<Value>,
}

pub async fn handle(app: &App, request: Request) -> Result<Response<Body>, Error> {
    respond(chat(app, request).await)
}

async fn chat(app: &App, request: Request) -> Result<Response<Body>, ApiError> {
    require_method(&request, Method::POST)?;
    // The token is checked first: a caller without one learns nothing about
    // what a valid body would be.
    let token = auth_token(&request)?;
    let body: ChatBody = json_body(&request)?;
    let message = ChatMessage::parse(required_string(body.message, "message")?)
        .map_err(|why| ApiError::invalid_field("message", why))?;
    // The reply is produced before the charge: a failing model costs nothing.
    let response = app.responder.respond(token.username(), &message).await?;
    let now = Instant::now();
    let record = ChatRecord {
        chat_id: uuid::Uuid::now_v7(),
        message: &message,
        response: &response,
        cost: app.config.chat_cost,
        created: now,
    };
    app.store.charge_and_save_chat(&token, &record, now).await?;
    tracing::info!(user = %token.username(), chat_id = %record.chat_id, cost = record.cost, "chat charged");
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "user": token.username().as_str(),
            "message": message.as_str(),
            "response": response,
            "timestamp": now.iso8601(),
        }),
    ))
}
