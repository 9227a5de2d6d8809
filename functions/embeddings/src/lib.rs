//! `POST /v1/embeddings`: OpenAI's embeddings, for the catalog's models of
//! kind `embedding`, metered by the one billing module as a chat is (a
//! hold on the input's bound, one model call per input, a settle to the
//! tokens the model reports; `billing::embeddings`), with the same
//! authentication, idempotency and errors as the other `/v1` routes.

pub mod request;

use chat_core::billing::embeddings::{embed, EmbedCall, Embedded};
use chat_core::embedder::to_base64;
use chat_core::http::{deadline, idempotency_key, json_body_within, require_method};
use chat_core::http::{IDEMPOTENT_REPLAYED, TOKENS_CHARGED};
use chat_core::metrics::ChatCounts;
use chat_core::openai::OpenAiError;
use chat_core::{ApiError, App};
use lambda_http::http::header::{CONTENT_TYPE, ORIGIN};
use lambda_http::http::{HeaderValue, Method, StatusCode};
use lambda_http::{Body, Error, Request, Response};
use serde_json::{json, Map, Value};

use request::{EmbeddingRequest, Encoding};

const FUNCTION: &str = "embeddings";

pub async fn handle(app: &App, request: Request) -> Result<Response<Body>, Error> {
    // A browser's preflight: answered here, for every allowed origin.
    if let Some(preflight) = app.config.cors.preflight(&request, &Method::POST) {
        return Ok(preflight.map(|()| Body::Empty));
    }
    let origin = request.headers().get(ORIGIN).cloned();
    // Boxed: the store's futures are large, and a debug build polls them
    // on the caller's stack.
    let mut response = Box::pin(respond(app, request)).await;
    app.config
        .cors
        .decorate(origin.as_ref(), response.headers_mut());
    Ok(response)
}

/// The answer, its metrics written: the vectors, or the error in OpenAI's
/// shape (with what it charged, for a model that failed after reading).
async fn respond(app: &App, request: Request) -> Response<Body> {
    let started = std::time::Instant::now();
    let (response, counts, throttled) = match Box::pin(embeddings(app, &request)).await {
        Ok((embedded, asked)) => {
            let charged = (!embedded.replayed).then_some(embedded.cost);
            (
                answer(&asked, &embedded),
                ChatCounts::answered(charged),
                false,
            )
        }
        Err(ApiError::ChargedFailure { failure, charged }) => {
            let error = ApiError::ChargedFailure { failure, charged };
            (
                OpenAiError::of(&error).into_response(),
                ChatCounts::answered(Some(charged)),
                false,
            )
        }
        Err(error) => (
            OpenAiError::of(&error).into_response(),
            ChatCounts::refused(&error),
            error.is_throttling(),
        ),
    };
    app.record(FUNCTION, started, Some(counts), throttled);
    response
}

/// A request the caller may make (a live-looking token, a valid body, an
/// embedding model served here at a size it makes), paid for.
async fn embeddings(
    app: &App,
    request: &Request,
) -> Result<(Embedded, EmbeddingRequest), ApiError> {
    require_method(request, Method::POST)?;
    let token = app.auth.authenticate(request).await?;
    let body: Map<String, Value> = json_body_within(request, request::MAX_BODY_BYTES)?;
    // Bound to the whole request but how the vectors are written, under a
    // prefix of its own so no chat shares its hash: a retry asking for
    // base64 where the first asked for floats gets the same vectors.
    let key = idempotency_key(request)?.map(|key| {
        let mut body = body.clone();
        body.remove("encoding_format");
        let mut bytes = b"v1/embeddings ".to_vec();
        bytes.extend(serde_json::to_vec(&body).unwrap_or_default());
        key.bind(&bytes)
    });
    let asked = request::parse(body)?;
    let model = app.models.embedding(&asked.model)?;
    let sizes = model.embedder.dimensions();
    let dimensions = match asked.dimensions {
        None => sizes.first().copied().unwrap_or_default(),
        Some(size) if sizes.contains(&size) => size,
        Some(_) => {
            let sizes: Vec<String> = sizes.iter().map(u32::to_string).collect();
            return Err(ApiError::invalid_field(
                "dimensions",
                format!(
                    "the model {} makes vectors of {} numbers",
                    model.id,
                    sizes.join(", ")
                ),
            ));
        }
    };
    let call = EmbedCall {
        model,
        inputs: &asked.inputs,
        dimensions,
        message: &asked.summary,
        key: key.as_ref(),
        deadline: deadline(request),
        function: FUNCTION,
    };
    let embedded = Box::pin(embed(app, &token, &call)).await?;
    Ok((embedded, asked))
}

/// OpenAI's `CreateEmbeddingResponse`: a list of embeddings, one per input
/// in order, each floats or base64 as asked, with the usage charged (an
/// embedding model reads and writes no other tokens).
fn answer(asked: &EmbeddingRequest, embedded: &Embedded) -> Response<Body> {
    let data: Vec<Value> = embedded
        .vectors
        .iter()
        .enumerate()
        .map(|(index, vector)| {
            let embedding = match asked.encoding {
                Encoding::Float => json!(vector),
                Encoding::Base64 => json!(to_base64(vector)),
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    let tokens = embedded.usage.prompt_tokens();
    let body = json!({
        "object": "list",
        "data": data,
        "model": asked.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    });
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(TOKENS_CHARGED, HeaderValue::from(embedded.cost.get()));
    if embedded.replayed {
        headers.insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
    response
}
