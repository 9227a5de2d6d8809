//! `POST /v1/responses`: OpenAI's Responses API over the same billing as
//! `/v1/chat/completions`: the dummy's reply charged and saved in one
//! transaction; a paid model's a hold, the model's stream, a settle. A
//! stream's settle comes before `response.completed`, so a client that saw
//! it was charged. Nothing is kept but the saved chat (`store: false`):
//! `previous_response_id` is refused (docs/openai.md).

pub mod request;
pub mod wire;

use completions::{event_stream, send_all};
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
use lambda_http::http::header::{CONTENT_TYPE, ORIGIN};
use lambda_http::http::{HeaderValue, Method, StatusCode};
use lambda_http::lambda_runtime::streaming::{channel, Body, Sender};
use lambda_http::{Error, Request, Response};
use serde_json::{Map, Value};

use request::ResponseRequest;
use wire::{Events, Reply};

const FUNCTION: &str = "responses";

pub async fn handle(app: Arc<App>, request: Request) -> Result<Response<Body>, Error> {
    if let Some(preflight) = app.config.cors.preflight(&request, &Method::POST) {
        return Ok(preflight.map(|()| Body::empty()));
    }
    let origin = request.headers().get(ORIGIN).cloned();
    // Boxed: the answer's future is large, and a debug build polls it on
    // the caller's stack.
    let mut response = Box::pin(respond(app.clone(), request)).await?;
    app.config
        .cors
        .decorate(origin.as_ref(), response.headers_mut());
    Ok(response)
}

/// The response itself: refused, answered whole, or streamed.
async fn respond(app: Arc<App>, request: Request) -> Result<Response<Body>, Error> {
    let started = std::time::Instant::now();
    let deadline = deadline(&request);
    let (token, asked, key, model) = match accept(&app, &request).await {
        Ok(accepted) => accepted,
        Err(error) => return Ok(refuse(&app, started, &error)),
    };
    let call = call_of(&model, &asked, key.as_ref(), deadline);
    let billed = if model.responder.is_paid() {
        match billing::open(&app, &token, &call).await {
            Ok(Opened::Done(billed)) => Ok(billed),
            Ok(Opened::Started(open)) if asked.completion.stream => {
                let owned = Owned {
                    model: model.clone(),
                    asked,
                    key,
                    deadline,
                };
                return Ok(stream(app.clone(), open, owned, started));
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
                Ok(settled) => (answer(&model.id, &asked, &settled, false), Some(cost)),
                // The model failed after reading the request: the error,
                // with what that cost.
                Err(error) => (OpenAiError::of(&error).into_response(), Some(cost)),
            }
        }
        Ok(Billed::Replayed(saved)) => (replay(&model.id, &asked, saved), None),
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
/// model served here, and the idempotency key bound to the body.
async fn accept(
    app: &App,
    request: &Request,
) -> Result<
    (
        VerifiedToken,
        ResponseRequest,
        Option<KeyedRequest>,
        ServedModel,
    ),
    ApiError,
> {
    require_method(request, Method::POST)?;
    let token = app.auth.authenticate(request).await?;
    let body: Map<String, Value> = json_body_within(request, completions::request::MAX_BODY_BYTES)?;
    // Bound to the whole request but how it is sent, under a prefix of its
    // own so neither a completion nor a `/chat/` message shares its hash.
    let key = idempotency_key(request)?.map(|key| {
        let mut body = body.clone();
        body.remove("stream");
        body.remove("stream_options");
        let mut bytes = b"v1/responses ".to_vec();
        bytes.extend(serde_json::to_vec(&body).unwrap_or_default());
        key.bind(&bytes)
    });
    let named = body.get("model").and_then(Value::as_str);
    let found = named.and_then(|id| app.models.get(Some(id)).ok());
    let cap = found
        .unwrap_or_else(|| app.models.default_model())
        .responder
        .max_output_tokens();
    let asked = request::parse(body, cap)?;
    let model = app.models.get(Some(&asked.completion.model))?.clone();
    if asked.completion.conversation.images() > 0 && !model.responder.takes_images() {
        return Err(ApiError::invalid_field(
            "input",
            format!("the model {} does not take images", model.id),
        ));
    }
    Ok((token, asked, key, model))
}

fn call_of<'a>(
    model: &'a ServedModel,
    asked: &'a ResponseRequest,
    key: Option<&'a KeyedRequest>,
    deadline: chat_core::deadline::Deadline,
) -> Call<'a> {
    Call {
        model,
        conversation: &asked.completion.conversation,
        sampling: &asked.completion.sampling,
        message: &asked.completion.last_message,
        key,
        deadline,
        function: FUNCTION,
    }
}

/// A reply already settled (or made free, or replayed), whole or as the
/// events of a stream.
fn answer(
    model: &str,
    asked: &ResponseRequest,
    settled: &Settled,
    replayed: bool,
) -> Response<Body> {
    let reply = Reply::new(settled.chat_id, model, asked);
    if asked.completion.stream {
        let mut events = Events::new(&reply);
        let mut all = events.opening();
        for piece in &settled.pieces {
            all.extend(events.delta(piece));
        }
        for (i, call) in settled.tool_calls.iter().enumerate() {
            let (id, name) = (&call.id, &call.name);
            all.extend(events.tool(i, ToolDelta::Start { id, name }));
            all.extend(events.tool(i, ToolDelta::Arguments(&call.arguments)));
        }
        all.extend(events.closing(settled.finish, settled.usage));
        return send_all(all, replayed);
    }
    let items = reply.items(&settled.text, &settled.tool_calls);
    let body = reply.response(Some((&items, settled.finish, settled.usage)));
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(TOKENS_CHARGED, HeaderValue::from(settled.cost.get()));
    if replayed {
        headers.insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
    response
}

/// The earlier answer to a retry under the same idempotency key, in the
/// form this request asks for; nothing charged now.
fn replay(model: &str, asked: &ResponseRequest, saved: SavedChat) -> Response<Body> {
    tracing::info!(chat_id = %saved.chat_id, "response replayed for its idempotency key");
    let settled = Settled {
        chat_id: uuid::Uuid::parse_str(&saved.chat_id).unwrap_or_default(),
        created: chat_core::clock::Timestamp::now(),
        pieces: vec![saved.response.clone()],
        text: saved.response,
        tool_calls: saved.tool_calls,
        finish: saved.finish,
        usage: saved.usage.unwrap_or_default(),
        cost: chat_core::credits::Credits::ZERO,
        failure: None,
    };
    answer(model, asked, &settled, true)
}

/// A paid model's reply streamed as it is written: the opening events at
/// once, a delta a piece, then the settle, then the closing events, so a
/// client that saw `response.completed` was charged; the invocation lasts
/// until the ledger is written.
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
            asked,
            key,
            deadline,
        } = owned;
        let call = call_of(&model, &asked, key.as_ref(), deadline);
        let reply = Reply::new(open.chat_id(), &model.id, &asked);
        let mut events = Events::new(&reply);
        let opening = events.opening();
        let mut sink = Deltas {
            sender: &mut sender,
            events: &mut events,
            here: true,
        };
        sink.send(opening).await;
        let settled = open.finish(&app, &call, Some(&mut sink)).await;
        if !sink.here {
            tracing::info!(chat_id = %settled.chat_id, "the client hung up mid-stream");
        }
        let cost = settled.cost;
        let closing = match settled.charged_failure() {
            Ok(settled) if settled.failure.is_none() => {
                events.closing(settled.finish, settled.usage)
            }
            // The text so far was charged; the client learns the rest
            // failed.
            Ok(settled) => settled
                .failure
                .iter()
                .map(|error| events.error(&OpenAiError::of(error).body))
                .collect(),
            Err(error) => vec![events.error(&OpenAiError::of(&error).body)],
        };
        for event in closing {
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
    asked: ResponseRequest,
    key: Option<KeyedRequest>,
    deadline: chat_core::deadline::Deadline,
}

/// Where a streamed reply's text goes as it comes: one delta a piece.
struct Deltas<'a, 'r> {
    sender: &'a mut Sender,
    events: &'a mut Events<'r>,
    /// The client is still reading.
    here: bool,
}

impl Sink for Deltas<'_, '_> {
    fn text<'a>(&'a mut self, text: &'a str) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>> {
        let events = self.events.delta(text);
        Box::pin(self.send(events))
    }

    /// A function call begun, or more of its arguments.
    fn tool_call<'a>(
        &'a mut self,
        index: usize,
        delta: ToolDelta<'a>,
    ) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>> {
        let events = self.events.tool(index, delta);
        Box::pin(self.send(events))
    }
}

impl Deltas<'_, '_> {
    /// Each event, while the client reads; whether it still does.
    async fn send(&mut self, events: Vec<Vec<u8>>) -> bool {
        for event in events {
            if !self.here {
                break;
            }
            self.here = self.sender.send_data(event.into()).await.is_ok();
        }
        self.here
    }
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
