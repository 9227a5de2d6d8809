//! `POST /v1/chat/completions`: OpenAI's Chat Completions, metered and
//! saved like `/chat/`, whole or streamed as server-sent events.
//!
//! With the dummy reply (free to produce) the reply is made first and
//! charged and saved in one transaction, as on `/chat/`. With a paid model
//! it is a hold on the most the reply can cost, the model's stream, then a
//! settle to what it cost: for a stream, the settle comes before the last
//! chunk and `[DONE]`, so a client that saw `[DONE]` was charged, and the
//! invocation lasts until the ledger is written.

pub mod request;
pub mod wire;

use std::sync::Arc;

use chat_core::clock::Timestamp;
use chat_core::deadline::Deadline;
use chat_core::domain::VerifiedToken;
use chat_core::http::{deadline, json_body_within, require_method};
use chat_core::metrics::ChatCounts;
use chat_core::openai::OpenAiError;
use chat_core::pricing::Usage;
use chat_core::responder::{Finish, Piece, ReplyStream};
use chat_core::store::{ChatOutcome, ChatRecord, Hold, HoldOutcome, HoldRequest, ReleaseReason};
use chat_core::{ApiError, App};
use lambda_http::http::header::{CACHE_CONTROL, CONTENT_TYPE, ORIGIN};
use lambda_http::http::{HeaderValue, Method, StatusCode};
use lambda_http::lambda_runtime::streaming::{channel, Body, Sender};
use lambda_http::{Error, Request, Response};
use serde_json::{json, Map, Value};

use request::CompletionRequest;
use wire::Completion;

/// Kept free before Lambda's deadline to settle and end the stream: a
/// model still writing then is cut off (`finish_reason: "length"`) and
/// charged for what it wrote.
const SETTLE_MARGIN: std::time::Duration = std::time::Duration::from_secs(5);

const FUNCTION: &str = "completions";

pub async fn handle(app: Arc<App>, request: Request) -> Result<Response<Body>, Error> {
    // A browser's preflight: answered here, for every allowed origin.
    if let Some(preflight) = app.config.cors.preflight(&request, &Method::POST) {
        return Ok(preflight.map(|()| Body::empty()));
    }
    let origin = request.headers().get(ORIGIN).cloned();
    // Boxed: the answer's future is large, and a debug build polls it on
    // the caller's stack.
    let mut response = Box::pin(answer(app.clone(), request)).await?;
    app.config
        .cors
        .decorate(origin.as_ref(), response.headers_mut());
    Ok(response)
}

async fn answer(app: Arc<App>, request: Request) -> Result<Response<Body>, Error> {
    let started = std::time::Instant::now();
    let deadline = deadline(&request);
    let accepted = match accept(&app, &request).await {
        Ok(accepted) => accepted,
        Err(error) => return Ok(refuse(&app, started, &error)),
    };
    let (token, completion) = accepted;
    let answer = if app.responder.is_paid() {
        metered(app.clone(), token, completion, deadline, started).await
    } else {
        free(&app, &token, &completion, deadline).await
    };
    Ok(match answer {
        Ok(Answer::Now { response, charged }) => {
            app.record(
                FUNCTION,
                started,
                Some(ChatCounts::answered(Some(charged))),
                false,
            );
            response
        }
        // The stream's task writes the metrics once it knows the charge.
        Ok(Answer::Streaming(response)) => response,
        Err(error) => refuse(&app, started, &error),
    })
}

/// A request the caller may make: a live-looking token, a valid body and
/// the model served here. The session itself is checked by the charge or
/// the hold, in the same call.
async fn accept(
    app: &App,
    request: &Request,
) -> Result<(VerifiedToken, CompletionRequest), ApiError> {
    require_method(request, Method::POST)?;
    let token = app.auth.authenticate(request).await?;
    let body: Map<String, Value> = json_body_within(request, request::MAX_BODY_BYTES)?;
    let completion = request::parse(body, max_tokens_cap(app))?;
    if completion.model != app.responder.model_name() {
        return Err(ApiError::UnknownModel(completion.model));
    }
    Ok((token, completion))
}

/// The largest `max_tokens` a request may ask for: the model's cap. The
/// dummy writes two tokens whatever it is asked; it takes Bedrock's
/// common maximum so the same requests work against both.
fn max_tokens_cap(app: &App) -> u32 {
    match app.responder.max_output_tokens() {
        0 => DUMMY_MAX_TOKENS,
        cap => cap,
    }
}

const DUMMY_MAX_TOKENS: u32 = 8192;

enum Answer {
    /// Answered in full, with what it charged.
    Now {
        response: Response<Body>,
        charged: u64,
    },
    /// A stream under way; its task settles and counts it.
    Streaming(Response<Body>),
}

/// The dummy: the whole reply first, then one transaction charges and saves
/// it, then it goes out whole or as a stream of its pieces.
async fn free(
    app: &App,
    token: &VerifiedToken,
    completion: &CompletionRequest,
    deadline: Deadline,
) -> Result<Answer, ApiError> {
    let reply = app
        .responder
        .stream(&completion.conversation, &completion.sampling)
        .await?;
    let produced = Produced::read(reply, None, None).await;
    if let Some(error) = produced.failure {
        return Err(error);
    }
    let usage = produced.usage.unwrap_or_default();
    let record = ChatRecord {
        chat_id: uuid::Uuid::now_v7(),
        message: &completion.last_message,
        response: &produced.text,
        cost: app.config.pricing.charge(usage),
        usage,
        created: Timestamp::now(),
    };
    match app
        .store
        .charge_and_save_chat(token, &record, None, deadline)
        .await?
    {
        ChatOutcome::Saved => {}
        // Only a request with an idempotency key can replay, and this
        // route sends none.
        ChatOutcome::Replayed(_) => {
            return Err(ApiError::internal("a chat without a key replayed"))
        }
    }
    let name = app.responder.model_name();
    let wire = Completion::new(record.chat_id, record.created.unix_seconds(), name);
    let finish = produced.finish.unwrap_or(Finish::Stop);
    let response = if completion.stream {
        let mut events = vec![wire.chunk(wire::role_delta(), None, completion.include_usage)];
        for piece in &produced.pieces {
            events.push(wire.chunk(wire::text_delta(piece), None, completion.include_usage));
        }
        events.push(wire.chunk(json!({}), Some(finish), completion.include_usage));
        if completion.include_usage {
            events.push(wire.usage_chunk(usage));
        }
        events.push(wire::DONE.to_vec());
        let (mut sender, body) = channel();
        tokio::spawn(async move {
            for event in events {
                if sender.send_data(event.into()).await.is_err() {
                    break;
                }
            }
        });
        event_stream(body)
    } else {
        json_answer(&wire.whole(&produced.text, finish, usage), record.cost)
    };
    Ok(Answer::Now {
        response,
        charged: record.cost,
    })
}

/// A paid model: hold, then the model, then settle.
async fn metered(
    app: Arc<App>,
    token: VerifiedToken,
    completion: CompletionRequest,
    deadline: Deadline,
    started: std::time::Instant,
) -> Result<Answer, ApiError> {
    let pricing = app.config.pricing;
    let most = pricing.hold(
        completion.conversation.input_bound(),
        completion.sampling.max_tokens,
    );
    let now = Timestamp::now();
    let hold_request = HoldRequest {
        message: &completion.last_message,
        amount: most,
        key: None,
        taken: now,
        expires: now.plus(app.config.hold_ttl),
    };
    let hold = match app.store.take_hold(&token, &hold_request, deadline).await? {
        HoldOutcome::Held(hold) => hold,
        HoldOutcome::Replayed(_) => {
            return Err(ApiError::internal("a hold without a key replayed"))
        }
    };
    let reply = match app
        .responder
        .stream(&completion.conversation, &completion.sampling)
        .await
    {
        Ok(reply) => reply,
        Err(error) => {
            release(&app, &hold, ReleaseReason::ModelFailed, deadline).await;
            return Err(error);
        }
    };
    let cutoff = deadline
        .instant()
        .map(|at| at.checked_sub(SETTLE_MARGIN).unwrap_or(at));
    if !completion.stream {
        let produced = Produced::read(reply, cutoff, None).await;
        if produced.text.is_empty() || produced.failure.is_some() {
            // The client gets no text, so it pays nothing.
            release(&app, &hold, ReleaseReason::ModelFailed, deadline).await;
            return Err(produced.failure.unwrap_or_else(no_text));
        }
        let chat_id = uuid::Uuid::now_v7();
        let (cost, usage) = settle(&app, &hold, &completion, &produced, chat_id, deadline).await?;
        let name = app.responder.model_name();
        let wire = Completion::new(chat_id, Timestamp::now().unix_seconds(), name);
        let finish = produced.finish.unwrap_or(Finish::Stop);
        return Ok(Answer::Now {
            response: json_answer(&wire.whole(&produced.text, finish, usage), cost),
            charged: cost,
        });
    }
    let (mut sender, body) = channel();
    tokio::spawn(async move {
        let charged = stream_reply(
            &app,
            &mut sender,
            &hold,
            &completion,
            reply,
            cutoff,
            deadline,
        )
        .await;
        // Written while the stream is still open: the invocation ends when
        // the sender goes, and a line after it could be lost with a freeze.
        app.record(
            FUNCTION,
            started,
            Some(ChatCounts::answered(charged)),
            false,
        );
        drop(sender);
    });
    Ok(Answer::Streaming(event_stream(body)))
}

/// Streams the reply to the client, then settles it, then ends the stream:
/// what it charged, if anything.
async fn stream_reply(
    app: &App,
    sender: &mut Sender,
    hold: &Hold,
    completion: &CompletionRequest,
    reply: Box<dyn ReplyStream>,
    cutoff: Option<std::time::Instant>,
    deadline: Deadline,
) -> Option<u64> {
    let chat_id = uuid::Uuid::now_v7();
    let name = app.responder.model_name();
    let wire = Completion::new(chat_id, Timestamp::now().unix_seconds(), name);
    let include_usage = completion.include_usage;
    let first = wire.chunk(wire::role_delta(), None, include_usage);
    let hung_up = sender.send_data(first.into()).await.is_err();
    let sink = (!hung_up).then_some(Sink {
        sender: &mut *sender,
        wire: &wire,
        include_usage,
    });
    let produced = Produced::read(reply, cutoff, sink).await;
    if produced.hung_up || hung_up {
        tracing::info!(chat_id = %chat_id, "the client hung up mid-stream");
    }
    if produced.text.is_empty() {
        release(app, hold, ReleaseReason::ModelFailed, deadline).await;
        let error = produced.failure.unwrap_or_else(no_text);
        let _ = sender
            .send_data(wire::error_event(&OpenAiError::of(&error).body).into())
            .await;
        return None;
    }
    let (cost, usage) = match settle(app, hold, completion, &produced, chat_id, deadline).await {
        Ok(settled) => settled,
        Err(error) => {
            let _ = sender
                .send_data(wire::error_event(&OpenAiError::of(&error).body).into())
                .await;
            return None;
        }
    };
    let ending = match produced.failure {
        // The text so far was charged; the client learns the rest failed.
        Some(error) => vec![wire::error_event(&OpenAiError::of(&error).body)],
        None => {
            let finish = produced.finish.unwrap_or(Finish::Stop);
            let mut events = vec![wire.chunk(json!({}), Some(finish), include_usage)];
            if include_usage {
                events.push(wire.usage_chunk(usage));
            }
            events.push(wire::DONE.to_vec());
            events
        }
    };
    for event in ending {
        if sender.send_data(event.into()).await.is_err() {
            break;
        }
    }
    Some(cost)
}

/// Where a streamed reply's text goes as it comes.
struct Sink<'a> {
    sender: &'a mut Sender,
    wire: &'a Completion<'a>,
    include_usage: bool,
}

/// What the model wrote, and how it ended.
#[derive(Default)]
struct Produced {
    text: String,
    pieces: Vec<String>,
    finish: Option<Finish>,
    usage: Option<Usage>,
    /// The model failed midway (or before writing anything).
    failure: Option<ApiError>,
    /// The client went away: the model was stopped there.
    hung_up: bool,
}

impl Produced {
    /// Reads the reply to its end, to `cutoff`, or until the client hangs
    /// up; each piece goes to `sink` as it comes. Dropping the reply stream
    /// at the end stops the model.
    async fn read(
        mut reply: Box<dyn ReplyStream>,
        cutoff: Option<std::time::Instant>,
        mut sink: Option<Sink<'_>>,
    ) -> Self {
        let mut produced = Produced::default();
        loop {
            let next = match cutoff {
                Some(at) => match tokio::time::timeout_at(at.into(), reply.next()).await {
                    Ok(next) => next,
                    Err(_) => {
                        tracing::warn!("the model was cut off to settle before the deadline");
                        produced.finish = Some(Finish::Length);
                        break;
                    }
                },
                None => reply.next().await,
            };
            match next {
                Ok(Some(Piece::Text(text))) => {
                    produced.text.push_str(&text);
                    if let Some(sink) = sink.as_mut() {
                        let chunk =
                            sink.wire
                                .chunk(wire::text_delta(&text), None, sink.include_usage);
                        if sink.sender.send_data(chunk.into()).await.is_err() {
                            produced.hung_up = true;
                            break;
                        }
                    }
                    produced.pieces.push(text);
                }
                Ok(Some(Piece::Finished { finish, usage })) => {
                    produced.finish = Some(finish);
                    produced.usage = usage;
                }
                Ok(None) => break,
                Err(error) => {
                    produced.failure = Some(error);
                    break;
                }
            }
        }
        produced
    }
}

/// Settles the hold to what the reply cost and saves the chat; a failed
/// settle gives the hold back at once. What it charged, and the usage it
/// charged for.
async fn settle(
    app: &App,
    hold: &Hold,
    completion: &CompletionRequest,
    produced: &Produced,
    chat_id: uuid::Uuid,
    deadline: Deadline,
) -> Result<(u64, Usage), ApiError> {
    let usage = charged_usage(completion, produced);
    let record = ChatRecord {
        chat_id,
        message: &completion.last_message,
        response: &produced.text,
        cost: app.config.pricing.cost(usage, hold.amount),
        usage,
        created: Timestamp::now(),
    };
    if let Err(error) = app.store.settle(hold, &record, deadline).await {
        release(app, hold, ReleaseReason::SettleFailed, deadline).await;
        return Err(error);
    }
    Ok((record.cost, usage))
}

/// The usage a reply is charged for: what the model reported or, when its
/// report never came (it failed midway, the client hung up, or it was cut
/// off for time), the bounds the hold was taken on: the input's bound (its
/// UTF-8 size plus overhead per message and in all), and the text's UTF-8 size (no common tokenizer makes more
/// tokens than bytes) up to `max_tokens`. So a reply that wrote something
/// is never free, and never costs more than its hold.
fn charged_usage(completion: &CompletionRequest, produced: &Produced) -> Usage {
    if let (Some(usage), false) = (produced.usage, produced.hung_up) {
        return usage;
    }
    Usage::bound(
        completion.conversation.input_bound(),
        (produced.text.len() as u64).min(u64::from(completion.sampling.max_tokens)),
    )
}

async fn release(app: &App, hold: &Hold, reason: ReleaseReason, deadline: Deadline) {
    // Should the release fail too, the hold stays open and the sweeper
    // gives it back after its deadline.
    if let Err(e) = app.store.release(hold, reason, deadline).await {
        tracing::warn!(error = %e, "a hold was left to the sweeper");
    }
}

fn no_text() -> ApiError {
    ApiError::ModelError("the model's reply holds no text".into())
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

fn event_stream(body: Body) -> Response<Body> {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

fn json_answer(body: &Value, charged: u64) -> Response<Body> {
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(chat_core::http::TOKENS_CHARGED, HeaderValue::from(charged));
    response
}
