//! `POST /chat/`: answers a message, charging its cost and saving the chat.
//!
//! With the dummy reply (free to produce) that is one transaction: charge
//! and save. With a paid model it is two: a hold on the most the chat can
//! cost before the model is called, then a settle to what it did cost, so
//! concurrent chats can never buy more model calls than the balance covers.

use chat_core::clock::Timestamp;
use chat_core::deadline::Deadline;
use chat_core::domain::{ChatMessage, IdempotencyKey, Username, VerifiedToken};
use chat_core::http::{
    deadline, idempotency_key, json_body, require_method, required_string, IDEMPOTENT_REPLAYED,
    TOKENS_CHARGED,
};
use chat_core::metrics::ChatAnswer;
use chat_core::response::json_response;
use chat_core::store::{
    ChatOutcome, ChatRecord, HoldOutcome, HoldRequest, ReleaseReason, SavedChat,
};
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
    app.answer("chat", started, chat(app, request).await)
}

async fn chat(app: &App, request: Request) -> Result<ChatAnswer, ApiError> {
    require_method(&request, Method::POST)?;
    // The token is checked first: a caller without one learns nothing about
    // what a valid body would be.
    let token = app.auth.authenticate(&request).await?;
    let body: ChatBody = json_body(&request)?;
    let message = ChatMessage::parse(required_string(body.message, "message")?)
        .map_err(|why| ApiError::invalid_field("message", why))?;
    let key = idempotency_key(&request)?;
    let deadline = deadline(&request);
    if app.responder.is_paid() {
        return metered(app, &token, &message, key.as_ref(), deadline).await;
    }
    // Free to produce, so produced first: the check and the charge are then
    // one transaction.
    let reply = app.responder.respond(token.username(), &message).await?;
    let record = ChatRecord {
        chat_id: uuid::Uuid::now_v7(),
        message: &message,
        response: &reply.text,
        cost: app.config.pricing.charge(reply.usage),
        usage: reply.usage,
        created: Timestamp::now(),
    };
    let outcome = app
        .store
        .charge_and_save_chat(&token, &record, key.as_ref(), deadline)
        .await?;
    Ok(match outcome {
        ChatOutcome::Saved => charged(token.username(), &record),
        ChatOutcome::Replayed(saved) => replayed(token.username(), &message, saved),
    })
}

/// A paid model's chat: hold, model, settle. A model that fails gives the
/// whole hold back; a function that dies in between leaves its hold to
/// the sweeper, which gives it back after the hold's deadline.
async fn metered(
    app: &App,
    token: &VerifiedToken,
    message: &ChatMessage,
    key: Option<&IdempotencyKey>,
    deadline: Deadline,
) -> Result<ChatAnswer, ApiError> {
    let pricing = app.config.pricing;
    let most = pricing.hold(message.as_str().len(), app.responder.max_output_tokens());
    let now = Timestamp::now();
    let expires = now.plus(app.config.hold_ttl);
    let request = HoldRequest {
        message,
        amount: most,
        key,
        taken: now,
        expires,
    };
    let hold = match app.store.take_hold(token, &request, deadline).await? {
        HoldOutcome::Held(hold) => hold,
        HoldOutcome::Replayed(saved) => return Ok(replayed(token.username(), message, saved)),
    };
    let reply = match app.responder.respond(token.username(), message).await {
        Ok(reply) => reply,
        Err(error) => {
            // Nothing was produced to charge for. Should the release itself
            // fail, the hold stays open and the sweeper gives it back.
            if let Err(e) = app
                .store
                .release(&hold, ReleaseReason::ModelFailed, deadline)
                .await
            {
                tracing::warn!(error = %e, "a hold was left to the sweeper");
            }
            return Err(error);
        }
    };
    let record = ChatRecord {
        chat_id: uuid::Uuid::now_v7(),
        message,
        response: &reply.text,
        cost: pricing.cost(reply.usage, hold.amount),
        usage: reply.usage,
        created: Timestamp::now(),
    };
    if let Err(error) = app.store.settle(&hold, &record, deadline).await {
        // The hold must not stay taken until the sweeper comes. Settle and
        // release both need it open, so at most one of them applies: if
        // the settle did go through after all, this gives nothing back.
        if let Err(e) = app
            .store
            .release(&hold, ReleaseReason::SettleFailed, deadline)
            .await
        {
            tracing::warn!(error = %e, "a hold was left to the sweeper");
        }
        return Err(error);
    }
    Ok(charged(token.username(), &record))
}

/// The answer to a chat charged now.
fn charged(user: &Username, record: &ChatRecord<'_>) -> ChatAnswer {
    tracing::debug!(user = %user, chat_id = %record.chat_id, cost = record.cost, "chat charged");
    let mut response = reply(
        user,
        record.message,
        record.response.to_owned(),
        record.created.iso8601(),
    );
    response
        .headers_mut()
        .insert(TOKENS_CHARGED, HeaderValue::from(record.cost));
    ChatAnswer {
        response,
        charged: Some(record.cost),
    }
}

/// The earlier answer to a retry under the same idempotency key: nothing
/// charged now.
fn replayed(user: &Username, message: &ChatMessage, saved: SavedChat) -> ChatAnswer {
    tracing::info!(user = %user, chat_id = %saved.chat_id, "chat replayed for its idempotency key");
    let mut response = reply(user, message, saved.response, saved.timestamp);
    let headers = response.headers_mut();
    // As Stripe and the IETF idempotency-key draft's users do: tells a
    // client this is the earlier answer, not a second charge.
    headers.insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    headers.insert(TOKENS_CHARGED, HeaderValue::from(0u64));
    ChatAnswer {
        response,
        charged: None,
    }
}

fn reply(
    user: &Username,
    message: &ChatMessage,
    response: String,
    timestamp: String,
) -> Response<Body> {
    json_response(
        StatusCode::OK,
        &json!({
            "user": user.as_str(),
            "message": message.as_str(),
            "response": response,
            "timestamp": timestamp,
        }),
    )
}
