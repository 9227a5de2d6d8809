//! `GET /v1/models`: the models this deployment serves (its catalog), in
//! OpenAI's list shape, so OpenAI clients can find their names before they
//! chat.

use chat_core::clock::Timestamp;
use chat_core::http::require_method;
use chat_core::openai::OpenAiError;
use chat_core::response::json_response;
use chat_core::{ApiError, App};
use lambda_http::http::{header, Method, StatusCode};
use lambda_http::{Body, Error, Request, Response};
use serde_json::{json, Value};

/// Who the model list says owns the model: this API, which serves it.
const OWNER: &str = "chat-api";

/// `created` in the model object: OpenAI gives the model's release; ours
/// is a fixed date (2025-01-01), so the answer never changes between calls.
const CREATED: u64 = 1_735_689_600;

pub async fn handle(app: &App, ids: &[String], request: Request) -> Result<Response<Body>, Error> {
    // A browser's preflight: answered here, for every allowed origin.
    if let Some(preflight) = app.config.cors.preflight(&request, &Method::GET) {
        return Ok(preflight.map(|()| Body::Empty));
    }
    let started = std::time::Instant::now();
    let mut response = app.answer_as(
        "models",
        started,
        models(app, ids, &request).await,
        |error| OpenAiError::of(&error).into_response(),
    )?;
    let origin = request.headers().get(header::ORIGIN);
    app.config.cors.decorate(origin, response.headers_mut());
    Ok(response)
}

async fn models(app: &App, ids: &[String], request: &Request) -> Result<Response<Body>, ApiError> {
    require_method(request, Method::GET)?;
    let token = app.auth.authenticate(request).await?;
    // A revoked or disabled caller is refused here as everywhere else:
    // the balance's read is the one that checks the session is live.
    app.store.balance(&token, Timestamp::now()).await?;
    let data: Vec<Value> = ids.iter().map(|id| model_object(id)).collect();
    let body = json!({ "object": "list", "data": data });
    Ok(json_response(StatusCode::OK, &body))
}

fn model_object(model: &str) -> Value {
    json!({ "id": model, "object": "model", "created": CREATED, "owned_by": OWNER })
}
