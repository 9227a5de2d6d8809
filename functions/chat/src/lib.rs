//! `POST /chat/`: answers a message, charging its cost and saving the chat
//! in one atomic write.

pub mod model;

use chat_core::clock::Instant;
use chat_core::domain::{ChatMessage, Username};
use chat_core::http::{
    deadline, idempotency_key, json_body, json_response, require_method, required_string,
    IDEMPOTENT_REPLAYED,
};
use chat_core::store::{ChatOutcome, ChatRecord, SavedChat};
use chat_core::{ApiError, App};
use lambda_http::http::{HeaderValue, Method, StatusCode};
use lambda_http::{Body, Error, Request, Response};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
struct ChatBody {
    message: Option<Value>,
}

pub async fn handle(app: &App, request: Request) -> Result<Response<Body>, Error> {
    let started = std::time::Instant::now();
    app.answer_chat(started, chat(app, request).await)
}

async fn chat(app: &App, request: Request) -> Result<Response<Body>, ApiError> {
    require_method(&request, Method::POST)?;
    // The token is checked first: a caller without one learns nothing about
    // what a valid body would be.
    let token = app.auth.authenticate(&request).await?;
    let body: ChatBody = json_body(&request)?;
    let message = ChatMessage::parse(required_string(body.message, "message")?)
        .map_err(|why| ApiError::invalid_field("message", why))?;
    let key = idempotency_key(&request)?;
    if app.responder.is_paid() {
        // A model call costs us whether or not the charge below succeeds, so
        // a forged token, an empty balance or a retry of a chat already
        // answered must be settled before it, by one read.
        let earlier = app
            .store
            .check_before_model(
                &token,
                &message,
                key.as_ref(),
                app.config.chat_cost,
                Instant::now(),
                deadline(&request),
            )
            .await?;
        if let Some(saved) = earlier {
            return Ok(replayed(token.username(), &message, saved));
        }
    }
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
    let outcome = app
        .store
        .charge_and_save_chat(&token, &record, key.as_ref(), deadline(&request))
        .await?;
    Ok(match outcome {
        ChatOutcome::Saved => {
            // Debug: at the default level the metrics line records the
            // charge, and a chat's log bytes are a line item of its cost.
            tracing::debug!(user = %token.username(), chat_id = %record.chat_id, cost = record.cost, "chat charged");
            reply(token.username(), &message, response, now.iso8601(), false)
        }
        ChatOutcome::Replayed(saved) => replayed(token.username(), &message, saved),
    })
}

/// The earlier answer to a retry under the same idempotency key, found
/// before the model or by the charging transaction.
fn replayed(user: &Username, message: &ChatMessage, saved: SavedChat) -> Response<Body> {
    tracing::info!(user = %user, chat_id = %saved.chat_id, "chat replayed for its idempotency key");
    reply(user, message, saved.response, saved.timestamp, true)
}

fn reply(
    user: &Username,
    message: &ChatMessage,
    response: String,
    timestamp: String,
    replayed: bool,
) -> Response<Body> {
    let mut reply = json_response(
        StatusCode::OK,
        &json!({
            "user": user.as_str(),
            "message": message.as_str(),
            "response": response,
            "timestamp": timestamp,
        }),
    );
    if replayed {
        // As Stripe and the IETF idempotency-key draft's users do: tells a
        // client this is the earlier answer, not a second charge.
        reply
            .headers_mut()
            .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
    reply
}
