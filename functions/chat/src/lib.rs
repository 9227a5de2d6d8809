//! `POST /chat/`: answers a message, charging its cost and saving the chat.
//!
//! With the dummy reply (free to produce) that is one transaction: charge
//! and save. With a paid model it is two: a hold on the most the chat can
//! cost before the model is called, then a settle to what it did cost, so
//! concurrent chats can never buy more model calls than the balance covers.

use chat_core::billing::{self, Billed, Call, Opened, Settled};
use chat_core::domain::{ChatMessage, Username};
use chat_core::http::{
    deadline, idempotency_key, json_body, require_method, required_string, IDEMPOTENT_REPLAYED,
    TOKENS_CHARGED,
};
use chat_core::metrics::ChatAnswer;
use chat_core::responder::{Conversation, Sampling};
use chat_core::response::json_response;
use chat_core::store::SavedChat;
use chat_core::{ApiError, App};
use lambda_http::http::{HeaderValue, Method, StatusCode};
use lambda_http::{Body, Error, Request, Response};
use serde::Deserialize;
use serde_json::{json, Value};

/// On a charged chat: why the reply ended, in OpenAI's words (`stop`,
/// `length` when it was cut short, `content_filter`).
pub const FINISH_REASON: &str = "finish-reason";

#[derive(Deserialize)]
struct ChatBody {
    message: Option<Value>,
    /// A model of the catalog (`GET /v1/models`); absent: the default.
    model: Option<Value>,
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
    let named = match body.model {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) if id.is_empty() => {
            return Err(ApiError::invalid_field("model", "may not be empty"))
        }
        Some(Value::String(id)) => Some(id),
        Some(_) => return Err(ApiError::invalid_field("model", "must be a string")),
    };
    // Bound to the message alone, as it always was: a retry with another
    // message under the same key is refused.
    let key = idempotency_key(&request)?.map(|key| key.bind(message.as_str().as_bytes()));
    // Only a request valid in every other way is told its model is unknown.
    let model = app.models.get(named.as_deref())?;
    let conversation = Conversation::single(message.as_str());
    let sampling = Sampling {
        max_tokens: model.responder.max_output_tokens(),
        ..Sampling::default()
    };
    let call = Call {
        model,
        conversation: &conversation,
        sampling: &sampling,
        message: &message,
        key: key.as_ref(),
        deadline: deadline(&request),
        function: "chat",
    };
    // Free to produce, so produced first and then charged in the one
    // transaction that saves it; a paid model is metered.
    let billed = if model.responder.is_paid() {
        match billing::open(app, &token, &call).await? {
            Opened::Started(open) => Billed::Charged(open.finish(app, &call, None).await),
            Opened::Done(billed) => billed,
        }
    } else {
        billing::free(app, &token, &call).await?
    };
    Ok(match billed {
        Billed::Charged(settled) => {
            let cost = settled.cost;
            match settled.charged_failure() {
                Ok(settled) => charged(token.username(), &message, settled),
                // The model failed after reading the message: the error,
                // with what that cost.
                Err(error) => ChatAnswer {
                    response: error.into_response(),
                    charged: Some(cost),
                },
            }
        }
        Billed::Replayed(saved) => replayed(token.username(), &message, saved),
    })
}

/// The answer to a chat charged now.
fn charged(user: &Username, message: &ChatMessage, settled: Settled) -> ChatAnswer {
    tracing::debug!(user = %user, chat_id = %settled.chat_id, cost = %settled.cost, "chat charged");
    let mut response = reply(user, message, settled.text, settled.created.iso8601());
    let headers = response.headers_mut();
    headers.insert(TOKENS_CHARGED, HeaderValue::from(settled.cost.get()));
    headers.insert(
        FINISH_REASON,
        HeaderValue::from_static(settled.finish.as_str()),
    );
    ChatAnswer {
        response,
        charged: Some(settled.cost),
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
