//! `POST /v1/chat/completions`: OpenAI's Chat Completions, metered and
//! saved like `/chat/`, whole or streamed as server-sent events.
//!
//! With the dummy reply (free to produce) the reply is made first and
//! charged and saved in one transaction, as on `/chat/`. With a paid model
//! it is a hold on the most the reply can cost, the model's stream, then a
//! settle to what it cost: for a stream, the settle comes before the last
//! chunk and `[DONE]`, so a client that saw `[DONE]` was charged, and the
//! invocation lasts until the ledger is written.

pub mod images;
pub mod request;
pub mod wire;

use chat_core::credits::Credits;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use chat_core::billing::{self, Billed, Call, Opened, Settled, Sink, ToolDelta};
use chat_core::domain::{KeyedRequest, VerifiedToken};
use chat_core::http::{deadline, idempotency_key, json_body_within, require_method};
use chat_core::http::{IDEMPOTENT_REPLAYED, TOKENS_CHARGED};
use chat_core::metrics::ChatCounts;
use chat_core::openai::OpenAiError;
use chat_core::served::ServedModel;
use chat_core::store::SavedChat;
use chat_core::{ApiError, App};
use lambda_http::http::header::{CACHE_CONTROL, CONTENT_TYPE, ORIGIN};
use lambda_http::http::{HeaderValue, Method, StatusCode};
use lambda_http::lambda_runtime::streaming::{channel, Body, Sender};
use lambda_http::{Error, Request, Response};
use serde_json::{json, Map, Value};

use request::CompletionRequest;
use wire::Completion;

const FUNCTION: &str = "completions";

pub async fn handle(app: Arc<App>, request: Request) -> Result<Response<Body>, Error> {
    // A browser's preflight: answered here, for every allowed origin.
    if let Some(preflight) = app.config.cors.preflight(&request, &Method::POST) {
        return Ok(preflight.map(|()| Body::empty()));
    }
    let origin = request.headers().get(ORIGIN).cloned();
    // Boxed: the answer's future is large, and a debug build polls it on
    // the caller's stack.
    let mut response = Box::pin(complete(app.clone(), request)).await?;
    app.config
        .cors
        .decorate(origin.as_ref(), response.headers_mut());
    Ok(response)
}

/// The completion itself: refused, answered whole, or streamed.
async fn complete(app: Arc<App>, request: Request) -> Result<Response<Body>, Error> {
    let started = std::time::Instant::now();
    let deadline = deadline(&request);
    let (token, completion, key, model) = match accept(&app, &request).await {
        Ok(accepted) => accepted,
        Err(error) => return Ok(refuse(&app, started, &error)),
    };
    let call = call_of(&model, &completion, key.as_ref(), deadline);
    let billed = if model.responder.is_paid() {
        match billing::open(&app, &token, &call).await {
            Ok(Opened::Done(billed)) => Ok(billed),
            Ok(Opened::Started(open)) if completion.stream => {
                let call = Owned {
                    model: model.clone(),
                    completion,
                    key,
                    deadline,
                };
                return Ok(stream(app.clone(), open, call, started));
            }
            Ok(Opened::Started(open)) => Ok(Billed::Charged(open.finish(&app, &call, None).await)),
            Err(error) => Err(error),
        }
    } else {
        billing::free(&app, &token, &call).await
    };
    let (response, charged) = match billed {
        Ok(Billed::Charged(settled)) => {
            let cost = settled.cost;
            match settled.charged_failure() {
                Ok(settled) => (answer(&model.id, &completion, &settled), Some(cost)),
                // The model failed after reading the request: the error,
                // with what that cost.
                Err(error) => (OpenAiError::of(&error).into_response(), Some(cost)),
            }
        }
        Ok(Billed::Replayed(saved)) => (replay(&model.id, &completion, saved), None),
        Err(error) => return Ok(refuse(&app, started, &error)),
    };
    app.record(
        FUNCTION,
        started,
        Some(ChatCounts::answered(charged)),
        false,
    );
    Ok(response)
}

/// A request the caller may make: a live-looking token, a valid body, a
/// model served here, and the idempotency key bound to the body. The
/// session itself is checked by the charge or the hold, in the same call.
async fn accept(
    app: &App,
    request: &Request,
) -> Result<
    (
        VerifiedToken,
        CompletionRequest,
        Option<KeyedRequest>,
        ServedModel,
    ),
    ApiError,
> {
    require_method(request, Method::POST)?;
    let token = app.auth.authenticate(request).await?;
    let body: Map<String, Value> = json_body_within(request, request::MAX_BODY_BYTES)?;
    // Bound to the whole request as parsed (any field changes the answer,
    // `stream` included only in how it is sent), under a prefix of its own
    // so no `/chat/` message can share a hash with it.
    let key = idempotency_key(request)?.map(|key| {
        let mut bytes = b"v1/chat/completions ".to_vec();
        bytes.extend(serde_json::to_vec(&without_stream(&body)).unwrap_or_default());
        key.bind(&bytes)
    });
    // The model first, for its reply cap; an unknown one is refused once
    // the body is known to be valid otherwise.
    let named = body.get("model").and_then(Value::as_str);
    let found = named.and_then(|id| app.models.get(Some(id)).ok());
    let cap = found
        .unwrap_or_else(|| app.models.default_model())
        .responder
        .max_output_tokens();
    let completion = request::parse(body, cap)?;
    let model = app.models.get(Some(&completion.model))?.clone();
    if completion.conversation.images() > 0 && !model.responder.takes_images() {
        return Err(ApiError::invalid_field(
            "messages",
            format!("the model {} does not take images", model.id),
        ));
    }
    Ok((token, completion, key, model))
}

/// What the billing module is asked for this completion.
fn call_of<'a>(
    model: &'a ServedModel,
    completion: &'a CompletionRequest,
    key: Option<&'a KeyedRequest>,
    deadline: chat_core::deadline::Deadline,
) -> Call<'a> {
    Call {
        model,
        conversation: &completion.conversation,
        sampling: &completion.sampling,
        message: &completion.last_message,
        key,
        deadline,
        function: FUNCTION,
    }
}

/// The body without the fields that only say how the answer is sent: a
/// retry that asks for the same reply streamed, or whole, is the same
/// request.
fn without_stream(body: &Map<String, Value>) -> Map<String, Value> {
    let mut body = body.clone();
    body.remove("stream");
    body.remove("stream_options");
    body
}

/// The completion a chat's id stands for: `created` is the id's own time
/// (a UUIDv7), so a replay names the same second as the first answer.
fn completion_of<'a>(chat_id: uuid::Uuid, model: &'a str) -> Completion<'a> {
    let created = chat_id
        .get_timestamp()
        .map_or(0, |at| at.to_unix().0 as i64);
    Completion::new(chat_id, created, model)
}

/// A reply already settled (or made free), whole or as a stream of its
/// pieces.
fn answer(model: &str, completion: &CompletionRequest, settled: &Settled) -> Response<Body> {
    let wire = completion_of(settled.chat_id, model);
    if completion.stream {
        let mut events = vec![wire.chunk(wire::role_delta(), None, completion.include_usage)];
        for piece in &settled.pieces {
            events.push(wire.chunk(wire::text_delta(piece), None, completion.include_usage));
        }
        events.extend(tool_call_events(&wire, settled, completion.include_usage));
        events.extend(ending(&wire, settled, completion.include_usage));
        return send_all(events, false);
    }
    json_answer(
        &wire.whole(
            &settled.text,
            &settled.tool_calls,
            settled.finish,
            settled.usage,
        ),
        settled.cost,
        false,
    )
}

/// A settled reply's tool calls as a stream gives them: each call's start,
/// then its arguments in one piece.
fn tool_call_events(wire: &Completion<'_>, settled: &Settled, include_usage: bool) -> Vec<Vec<u8>> {
    let mut events = Vec::new();
    for (index, call) in settled.tool_calls.iter().enumerate() {
        let start = ToolDelta::Start {
            id: &call.id,
            name: &call.name,
        };
        events.push(wire.chunk(wire::tool_delta(index, start), None, include_usage));
        if !call.arguments.is_empty() {
            let arguments = ToolDelta::Arguments(&call.arguments);
            events.push(wire.chunk(wire::tool_delta(index, arguments), None, include_usage));
        }
    }
    events
}

/// The earlier answer to a retry under the same idempotency key, in the
/// form this request asks for; nothing charged now.
fn replay(model: &str, completion: &CompletionRequest, saved: SavedChat) -> Response<Body> {
    tracing::info!(chat_id = %saved.chat_id, "completion replayed for its idempotency key");
    let chat_id = uuid::Uuid::parse_str(&saved.chat_id).unwrap_or_default();
    let settled = Settled {
        chat_id,
        created: chat_core::clock::Timestamp::now(),
        pieces: vec![saved.response.clone()],
        text: saved.response,
        tool_calls: saved.tool_calls,
        finish: saved.finish,
        usage: saved.usage.unwrap_or_default(),
        cost: Credits::ZERO,
        failure: None,
    };
    let wire = completion_of(chat_id, model);
    if completion.stream {
        let mut events = vec![wire.chunk(wire::role_delta(), None, completion.include_usage)];
        if !settled.text.is_empty() || settled.tool_calls.is_empty() {
            events.push(wire.chunk(
                wire::text_delta(&settled.text),
                None,
                completion.include_usage,
            ));
        }
        events.extend(tool_call_events(&wire, &settled, completion.include_usage));
        events.extend(ending(&wire, &settled, completion.include_usage));
        return send_all(events, true);
    }
    json_answer(
        &wire.whole(
            &settled.text,
            &settled.tool_calls,
            settled.finish,
            settled.usage,
        ),
        Credits::ZERO,
        true,
    )
}

/// The events that end a stream: the finish chunk, the usage chunk if it
/// was asked for, `[DONE]`; or, after a failure midway, the error.
fn ending(wire: &Completion<'_>, settled: &Settled, include_usage: bool) -> Vec<Vec<u8>> {
    if let Some(error) = &settled.failure {
        // The text so far was charged; the client learns the rest failed.
        return vec![wire::error_event(&OpenAiError::of(error).body)];
    }
    let mut events = vec![wire.chunk(json!({}), Some(settled.finish), include_usage)];
    if include_usage {
        events.push(wire.usage_chunk(settled.usage));
    }
    events.push(wire::DONE.to_vec());
    events
}

/// A paid model's reply streamed as it is written: the role chunk at
/// once, each piece as it comes, then the settle, then the end, so a
/// client that saw `[DONE]` was charged; the invocation lasts until the
/// ledger is written.
fn stream(
    app: Arc<App>,
    open: billing::OpenCall,
    owned: Owned,
    started: std::time::Instant,
) -> Response<Body> {
    let (mut sender, body) = channel();
    tokio::spawn(async move {
        let Owned {
            model,
            completion,
            key,
            deadline,
        } = owned;
        let call = call_of(&model, &completion, key.as_ref(), deadline);
        let wire = completion_of(open.chat_id(), &model.id);
        let include_usage = completion.include_usage;
        let first = wire.chunk(wire::role_delta(), None, include_usage);
        let here = sender.send_data(first.into()).await.is_ok();
        let mut sink = Chunks {
            sender: &mut sender,
            wire: &wire,
            include_usage,
            here,
        };
        let settled = open.finish(&app, &call, Some(&mut sink)).await;
        if !sink.here {
            tracing::info!(chat_id = %settled.chat_id, "the client hung up mid-stream");
        }
        let cost = settled.cost;
        let ending = match settled.charged_failure() {
            Ok(settled) => ending(&wire, &settled, include_usage),
            // Nothing reached the client: it learns what failed and what
            // reading the request cost.
            Err(error) => vec![wire::error_event(&OpenAiError::of(&error).body)],
        };
        for event in ending {
            if sender.send_data(event.into()).await.is_err() {
                break;
            }
        }
        // Written while the stream is still open: the invocation ends when
        // the sender goes, and a line after it could be lost with a freeze.
        app.record(
            FUNCTION,
            started,
            Some(ChatCounts::answered(Some(cost))),
            false,
        );
        drop(sender);
    });
    event_stream(body)
}

/// What a stream's task owns of its request.
struct Owned {
    model: ServedModel,
    completion: CompletionRequest,
    key: Option<KeyedRequest>,
    deadline: chat_core::deadline::Deadline,
}

/// Where a streamed reply's text goes as it comes: one chunk a piece.
struct Chunks<'a> {
    sender: &'a mut Sender,
    wire: &'a Completion<'a>,
    include_usage: bool,
    /// The client is still reading.
    here: bool,
}

impl Sink for Chunks<'_> {
    fn text<'a>(&'a mut self, text: &'a str) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>> {
        Box::pin(async move {
            if self.here {
                let chunk = self
                    .wire
                    .chunk(wire::text_delta(text), None, self.include_usage);
                self.here = self.sender.send_data(chunk.into()).await.is_ok();
            }
            self.here
        })
    }

    fn tool_call<'a>(
        &'a mut self,
        index: usize,
        delta: ToolDelta<'a>,
    ) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>> {
        Box::pin(async move {
            if self.here {
                let chunk =
                    self.wire
                        .chunk(wire::tool_delta(index, delta), None, self.include_usage);
                self.here = self.sender.send_data(chunk.into()).await.is_ok();
            }
            self.here
        })
    }
}

/// Answers whole in a stream of `events`, sent by a task of its own. Like
/// every stream, it says nothing of its charge in a header: a metered
/// stream's headers go before its charge is known, and the two kinds are
/// one shape to a client.
pub fn send_all(events: Vec<Vec<u8>>, replayed: bool) -> Response<Body> {
    let (mut sender, body) = channel();
    tokio::spawn(async move {
        for event in events {
            if sender.send_data(event.into()).await.is_err() {
                break;
            }
        }
    });
    let mut response = event_stream(body);
    if replayed {
        response
            .headers_mut()
            .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
    response
}

fn refuse(app: &App, started: std::time::Instant, error: &ApiError) -> Response<Body> {
    app.record(
        FUNCTION,
        started,
        Some(ChatCounts::refused(error)),
        error.is_throttling(),
    );
    OpenAiError::of(error).into_response()
}

/// A server-sent events answer of `body`: what every /v1 stream is.
pub fn event_stream(body: Body) -> Response<Body> {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

fn json_answer(body: &Value, charged: Credits, replayed: bool) -> Response<Body> {
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = StatusCode::OK;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    mark(&mut response, charged, replayed);
    response
}

/// What this answer charged, and whether it is a replay of an earlier one.
fn mark(response: &mut Response<Body>, charged: Credits, replayed: bool) {
    let headers = response.headers_mut();
    headers.insert(TOKENS_CHARGED, HeaderValue::from(charged.get()));
    if replayed {
        headers.insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
}
