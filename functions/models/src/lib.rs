//! `GET /v1/models`: the models this deployment serves (its catalog), in
//! OpenAI's list shape, so OpenAI clients can find their names before they
//! chat.

use chat_core::catalog::ModelKind;
use chat_core::clock::Timestamp;
use chat_core::http::require_method;
use chat_core::openai::{ListedModel, OpenAiError};
use chat_core::pricing::Pricing;
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

/// The function's cold start, whole: the app, and the models it lists,
/// read once. An invalid catalog stops it with its sentence (the line at
/// fault), as the model functions' own start does.
pub async fn start() -> Result<(App, Vec<ListedModel>), Error> {
    let app = App::start_checking_tokens().await?;
    let served =
        chat_core::openai::listed_models(|name| std::env::var(name).ok(), app.config.pricing)
            .map_err(|e| format!("invalid configuration: {e}"))?;
    Ok((app, served))
}

pub async fn handle(
    app: &App,
    served: &[ListedModel],
    request: Request,
) -> Result<Response<Body>, Error> {
    // A browser's preflight: answered here, for every allowed origin.
    if let Some(preflight) = app.config.cors.preflight(&request, &Method::GET) {
        return Ok(preflight.map(|()| Body::Empty));
    }
    let started = std::time::Instant::now();
    let mut response = app.answer_as(
        "models",
        started,
        models(app, served, &request).await,
        |error| OpenAiError::of(&error).into_response(),
    )?;
    let origin = request.headers().get(header::ORIGIN);
    app.config.cors.decorate(origin, response.headers_mut());
    Ok(response)
}

async fn models(
    app: &App,
    served: &[ListedModel],
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    require_method(request, Method::GET)?;
    let token = app.auth.authenticate(request).await?;
    // A revoked or disabled caller is refused here as everywhere else.
    app.store
        .require_live_session(&token, Timestamp::now())
        .await?;
    let data: Vec<Value> = served.iter().map(model_object).collect();
    let body = json!({ "object": "list", "data": data });
    Ok(json_response(StatusCode::OK, &body))
}

/// OpenAI's model object, and `pricing`: what a call costs in balance
/// tokens, in the catalog's own terms (docs/catalog.md), so a page or a
/// program can show the price before it chats; and `kind`, `chat` or
/// `embedding`, the routes that take it. OpenAI's SDKs keep fields they do
/// not know; OpenRouter's listing carries its prices the same way.
fn model_object(model: &ListedModel) -> Value {
    let pricing = match model.pricing {
        // Priced by what it reads, and nothing else (the catalog's rule).
        Pricing::Usage(prices) if model.kind == ModelKind::Embedding => {
            json!({ "price_per_1000": { "input": prices.input_per_1000 } })
        }
        Pricing::Flat(tokens) => json!({ "flat": tokens }),
        Pricing::Usage(prices) => json!({ "price_per_1000": {
            "input": prices.input_per_1000,
            "output": prices.output_per_1000,
            "cache_read": prices.cache_read_per_1000,
            "cache_write": prices.cache_write_per_1000,
        } }),
    };
    json!({
        "id": model.id, "object": "model", "created": CREATED, "owned_by": OWNER,
        "pricing": pricing, "kind": model.kind.as_str(),
    })
}
