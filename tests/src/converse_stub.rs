//! A local stand-in for Bedrock's Converse and ConverseStream endpoints
//! (`POST /model/{modelId}/converse` and `.../converse-stream`), and for
//! `InvokeModel` of an embedding model (`.../invoke`, Titan Text Embeddings
//! V2's body), on a loopback port of its own, so the model paths run
//! through the real SDK (serialisation, event-stream framing, error
//! parsing, retries, timeouts) without AWS.
//!
//! Every [`Answer`] serves both chat endpoints: a stream is the same reply
//! event by event, a Converse reply is a stream's reply at once, and an
//! error before the reply is the same HTTP error on both. `InvokeModel`
//! answers [`Answer::Embedding`] (and an error, or a wait, as the others).

use std::io::Write;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_bedrockruntime::config::{BehaviorVersion, Credentials, Region};
use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use chat_core::app::http_client;
use chat_core::embedder::LocalEmbedder;
use chat_model::{BedrockResponder, ModelConfig, TitanEmbedder};
use percent_encoding::percent_decode_str;
use serde_json::{json, Value};

use crate::http::RequestReader;

/// What the stand-in answers to one call.
#[derive(Clone, Debug)]
pub enum Answer {
    /// A reply whose message is this text (usage: 12 in, 5 out); streamed
    /// as one piece.
    Text(String),
    /// A reply with this text, reporting this usage.
    Used {
        text: String,
        input_tokens: u64,
        output_tokens: u64,
    },
    /// A reply without text: a Converse message with no content blocks, a
    /// stream with no deltas.
    Empty,
    /// A Bedrock error: the status, and the type in `x-amzn-errortype`.
    Error {
        status: u16,
        error_type: &'static str,
    },
    /// A bare status with a body that is not Bedrock's.
    Status(u16),
    /// The answer, after a wait before the response head.
    After(Duration, Box<Answer>),
    /// The answer, once the test opens the gate: a model call that lasts
    /// exactly as long as the test needs it to.
    Gated(Gate, Box<Answer>),
    /// A reply told event by event: its pieces, pace, end and failures.
    Stream(Streamed),
    /// `InvokeModel`'s reply for Titan Text Embeddings V2: a unit vector of
    /// the size asked for (the local embedder's for the same text), and
    /// this `inputTextTokenCount`. A chat endpoint refuses it as Bedrock
    /// refuses a chat with an embedding model (a `ValidationException`).
    Embedding { input_tokens: u64 },
    /// `InvokeModel`'s 200 with a body that is not an embedding's.
    Garbled,
}

impl Answer {
    pub fn text(text: &str) -> Self {
        Answer::Text(text.to_owned())
    }

    /// A reply whose model reports `input_tokens` read and `output_tokens`
    /// written.
    pub fn used(text: &str, input_tokens: u64, output_tokens: u64) -> Self {
        Answer::Used {
            text: text.to_owned(),
            input_tokens,
            output_tokens,
        }
    }

    pub fn error(status: u16, error_type: &'static str) -> Self {
        Answer::Error { status, error_type }
    }

    pub fn after(delay: Duration, answer: Answer) -> Self {
        Answer::After(delay, Box::new(answer))
    }

    pub fn gated(gate: &Gate, answer: Answer) -> Self {
        Answer::Gated(gate.clone(), Box::new(answer))
    }

    /// An embedding whose model reports `input_tokens` read.
    pub fn embedding(input_tokens: u64) -> Self {
        Answer::Embedding { input_tokens }
    }

    /// The reply these answers share, as a stream: what a reply answer
    /// streams (`None` for an error, which both endpoints answer alike).
    fn streamed(&self) -> Option<Streamed> {
        match self {
            Answer::Text(text) => Some(Streamed::pieces(&[text.as_str()]).usage(12, 5)),
            Answer::Used {
                text,
                input_tokens,
                output_tokens,
            } => Some(Streamed::pieces(&[text.as_str()]).usage(*input_tokens, *output_tokens)),
            Answer::Empty => Some(Streamed::pieces(&[]).usage(12, 5)),
            Answer::Stream(streamed) => Some(streamed.clone()),
            Answer::Error { .. }
            | Answer::Status(_)
            | Answer::After(..)
            | Answer::Gated(..)
            | Answer::Embedding { .. }
            | Answer::Garbled => None,
        }
    }
}

/// Holds the answers behind it until [`Gate::open`]; open stays open.
#[derive(Clone, Debug, Default)]
pub struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    pub fn open(&self) {
        let (open, changed) = &*self.0;
        *open.lock().unwrap() = true;
        changed.notify_all();
    }

    fn wait(&self) {
        let (open, changed) = &*self.0;
        let mut is_open = open.lock().unwrap();
        while !*is_open {
            is_open = changed.wait(is_open).unwrap();
        }
    }
}

/// A ConverseStream reply. The events, as Bedrock sends them:
/// `messageStart`, one `contentBlockDelta` per piece, `contentBlockStop`,
/// `messageStop` with the stop reason, then `metadata` with the usage.
#[derive(Clone, Debug)]
pub struct Streamed {
    pieces: Vec<String>,
    stop_reason: &'static str,
    usage: Option<(u64, u64)>,
    /// Prompt-cache tokens read and written, reported beside the usage.
    cache: (u64, u64),
    first_event_after: Duration,
    between_pieces: Duration,
    /// Every piece after the first waits for this gate too.
    gate_after_first: Option<Gate>,
    failure: Option<(usize, &'static str)>,
    /// Tool calls after the text: id, name, and the arguments' pieces.
    tool_uses: Vec<(String, String, Vec<String>)>,
}

impl Streamed {
    /// These pieces at once, then `end_turn`, and a usage of 12 tokens in
    /// and one out per piece.
    pub fn pieces(pieces: &[&str]) -> Self {
        Streamed {
            pieces: pieces.iter().map(|p| (*p).to_owned()).collect(),
            stop_reason: "end_turn",
            usage: Some((12, pieces.len() as u64)),
            cache: (0, 0),
            first_event_after: Duration::ZERO,
            between_pieces: Duration::ZERO,
            gate_after_first: None,
            failure: None,
            tool_uses: Vec::new(),
        }
    }

    /// After the text, a call of the tool `name` under `id`, its arguments
    /// streamed in these pieces, as Bedrock does: a `contentBlockStart`
    /// with the `toolUse`, a `contentBlockDelta` per piece, a
    /// `contentBlockStop`; the stop reason becomes `tool_use`.
    pub fn tool_use(mut self, id: &str, name: &str, arguments: &[&str]) -> Self {
        self.tool_uses.push((
            id.to_owned(),
            name.to_owned(),
            arguments.iter().map(|a| (*a).to_owned()).collect(),
        ));
        self.stop_reason = "tool_use";
        self
    }

    /// The usage the `metadata` event reports.
    pub fn usage(mut self, input_tokens: u64, output_tokens: u64) -> Self {
        self.usage = Some((input_tokens, output_tokens));
        self
    }

    /// Tokens the usage reports read from and written to the prompt cache
    /// (`cacheReadInputTokens`, `cacheWriteInputTokens`), apart from its
    /// `inputTokens` as Bedrock reports them.
    pub fn cache(mut self, read: u64, write: u64) -> Self {
        self.cache = (read, write);
        self
    }

    /// `messageStop`'s `stopReason`, as Bedrock spells it: `end_turn`,
    /// `max_tokens`, `stop_sequence`, `guardrail_intervened`, ...
    pub fn stop_reason(mut self, reason: &'static str) -> Self {
        self.stop_reason = reason;
        self
    }

    /// The stream ends after `messageStop`: no `metadata`, so no usage.
    pub fn without_metadata(mut self) -> Self {
        self.usage = None;
        self
    }

    /// A slow model: the response head at once, its first event this much
    /// later.
    pub fn first_event_after(mut self, delay: Duration) -> Self {
        self.first_event_after = delay;
        self
    }

    /// A wait before every piece but the first.
    pub fn between_pieces(mut self, delay: Duration) -> Self {
        self.between_pieces = delay;
        self
    }

    /// The first piece at once, the rest once the test opens `gate`: a
    /// model that writes exactly one piece before the test says so.
    pub fn gated_after_first(mut self, gate: &Gate) -> Self {
        self.gate_after_first = Some(gate.clone());
        self
    }

    /// After `pieces` pieces, an exception event of this type
    /// (`modelStreamErrorException`, `internalServerException`,
    /// `throttlingException`, `serviceUnavailableException`,
    /// `validationException`) instead of the rest, then the connection
    /// closes.
    pub fn failing_after(mut self, pieces: usize, exception_type: &'static str) -> Self {
        self.failure = Some((pieces, exception_type));
        self
    }

    /// The whole text, as Converse answers it.
    fn text(&self) -> String {
        self.pieces.concat()
    }
}

/// One request the stand-in received.
#[derive(Clone, Debug)]
pub struct Call {
    /// From the path, percent-decoded.
    pub model_id: String,
    /// ConverseStream rather than Converse.
    pub streamed: bool,
    /// The JSON body as sent: `system`, `messages`, `inferenceConfig`.
    pub body: Value,
    /// When the stand-in had read the whole request.
    pub received: Instant,
}

impl Call {
    /// The text of the first content block of the first message.
    pub fn prompt(&self) -> Option<&str> {
        self.body["messages"][0]["content"][0]["text"].as_str()
    }

    /// The text an `InvokeModel` of Titan's embeddings was sent.
    pub fn input_text(&self) -> Option<&str> {
        self.body["inputText"].as_str()
    }
}

type Script = dyn Fn(usize) -> Answer + Send + Sync;

/// What the stand-in's threads share with the test.
struct Shared {
    calls: Mutex<Vec<Call>>,
    /// For each call, when each text piece of its stream was written.
    pieces_sent: Mutex<Vec<Vec<Instant>>>,
    script: Box<Script>,
    hang_ups: AtomicUsize,
}

pub struct ConverseStub {
    url: String,
    shared: Arc<Shared>,
}

impl ConverseStub {
    /// A stand-in giving every call the same answer.
    pub fn start(answer: Answer) -> Self {
        Self::scripted(move |_| answer.clone())
    }

    /// A stand-in whose answer to the n-th call (from 0, both endpoints
    /// counted together) is `script(n)`.
    pub fn scripted(script: impl Fn(usize) -> Answer + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding a loopback port");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shared = Arc::new(Shared {
            calls: Mutex::new(Vec::new()),
            pieces_sent: Mutex::new(Vec::new()),
            script: Box::new(script),
            hang_ups: AtomicUsize::new(0),
        });
        let served = shared.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                // Each event goes out in one write as it is due, as a
                // streaming server sends it; with Nagle's algorithm on, a
                // piece written while the last is unacknowledged would wait
                // for the client's delayed ACK (40 ms on Linux), and
                // make bench's relay figures would time that wait.
                let _ = stream.set_nodelay(true);
                let shared = served.clone();
                std::thread::spawn(move || serve(stream, &shared));
            }
        });
        ConverseStub { url, shared }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Every call so far, in the order they arrived.
    pub fn calls(&self) -> Vec<Call> {
        self.shared.calls.lock().unwrap().clone()
    }

    pub fn call_count(&self) -> usize {
        self.shared.calls.lock().unwrap().len()
    }

    /// When the stand-in had read the whole of the `call`-th request
    /// (from 0, in the order they arrived).
    pub fn received_at(&self, call: usize) -> Instant {
        self.shared.calls.lock().unwrap()[call].received
    }

    /// When each text piece of the `call`-th call's stream was written to
    /// the connection, in order (none for a call that was not streamed).
    pub fn piece_times(&self, call: usize) -> Vec<Instant> {
        self.shared.pieces_sent.lock().unwrap()[call].clone()
    }

    /// Streams whose remaining events could not be written because the
    /// client had closed the connection: each is a model that was stopped.
    pub fn hang_ups(&self) -> usize {
        self.shared.hang_ups.load(Ordering::SeqCst)
    }

    /// Waits (without blocking the runtime, which must run the client's
    /// connection to close it) until at least `count` streams were hung up
    /// on, or `limit` passed; returns the count then.
    pub async fn wait_for_hang_ups(&self, count: usize, limit: Duration) -> usize {
        let started = Instant::now();
        while self.hang_ups() < count && started.elapsed() < limit {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.hang_ups()
    }

    /// The production responder, pointed at this stand-in with dummy
    /// credentials, with `model`'s settings otherwise.
    pub fn responder(&self, mut model: ModelConfig) -> BedrockResponder {
        model.endpoint_url = Some(self.url.clone());
        let base = aws_sdk_bedrockruntime::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new(
                "stub",
                "stub",
                None,
                None,
                "converse-stub",
            ))
            .http_client(http_client());
        BedrockResponder::new(base, &model)
    }

    /// The production embedder, pointed at this stand-in as
    /// [`ConverseStub::responder`] points the responder.
    pub fn embedder(&self, mut model: ModelConfig) -> TitanEmbedder {
        model.endpoint_url = Some(self.url.clone());
        let base = aws_sdk_bedrockruntime::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new(
                "stub",
                "stub",
                None,
                None,
                "converse-stub",
            ))
            .http_client(http_client());
        TitanEmbedder::new(base, &model)
    }
}

/// Answers the requests of one connection, kept alive as the SDK expects,
/// until the client closes it or a stream ends it.
fn serve(stream: TcpStream, shared: &Shared) {
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = RequestReader::new(read_half);
    let mut writer = stream;
    while let Some((path, body)) = reader.next_request() {
        let operation = operation_of(&path);
        let call = Call {
            model_id: model_id_of(&path),
            streamed: operation == Some(Operation::ConverseStream),
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
            received: Instant::now(),
        };
        let index = {
            let mut calls = shared.calls.lock().unwrap();
            calls.push(call);
            // Under the calls' lock, so the two lists keep one order.
            shared.pieces_sent.lock().unwrap().push(Vec::new());
            calls.len() - 1
        };
        let mut answer = match operation {
            Some(_) => (shared.script)(index),
            None => Answer::error(404, "UnknownOperationException"),
        };
        let answer = loop {
            answer = match answer {
                Answer::After(delay, later) => {
                    std::thread::sleep(delay);
                    *later
                }
                Answer::Gated(gate, later) => {
                    gate.wait();
                    *later
                }
                ready => break ready,
            };
        };
        let streamed = answer.streamed();
        let written = match (operation, streamed) {
            (Some(Operation::Invoke), _) => {
                let body = shared.calls.lock().unwrap()[index].body.clone();
                write_json(&mut writer, &invoke_answer(&answer, &body)).is_ok()
            }
            (_, None) if matches!(answer, Answer::Embedding { .. } | Answer::Garbled) => {
                let refused = Answer::error(400, "ValidationException");
                write_json(&mut writer, &error_answer(&refused)).is_ok()
            }
            (Some(Operation::ConverseStream), Some(streamed)) => {
                let mut piece_sent =
                    || shared.pieces_sent.lock().unwrap()[index].push(Instant::now());
                match write_events(&mut writer, &streamed, &mut piece_sent) {
                    Ok(keep_open) => keep_open,
                    Err(HungUp) => {
                        shared.hang_ups.fetch_add(1, Ordering::SeqCst);
                        false
                    }
                }
            }
            (_, Some(streamed)) => {
                std::thread::sleep(streamed.first_event_after);
                write_json(&mut writer, &converse_answer(&streamed)).is_ok()
            }
            (_, None) => write_json(&mut writer, &error_answer(&answer)).is_ok(),
        };
        // The client gave up (a timeout, a dropped stream), or a failed
        // stream ends its connection as Bedrock's does.
        if !written {
            let _ = writer.shutdown(Shutdown::Both);
            return;
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Operation {
    Converse,
    ConverseStream,
    Invoke,
}

fn operation_of(path: &str) -> Option<Operation> {
    if path.ends_with("/converse") {
        Some(Operation::Converse)
    } else if path.ends_with("/converse-stream") {
        Some(Operation::ConverseStream)
    } else if path.ends_with("/invoke") {
        Some(Operation::Invoke)
    } else {
        None
    }
}

/// `InvokeModel`'s answer to Titan's `body`: the embedding, or the error
/// (a chat answer is a `ValidationException`, as Bedrock's for a body the
/// model cannot read).
fn invoke_answer(answer: &Answer, body: &Value) -> JsonAnswer {
    match answer {
        Answer::Embedding { input_tokens } => {
            let text = body["inputText"].as_str().unwrap_or_default();
            let dimensions = body["dimensions"].as_u64().unwrap_or(1024);
            let vector = LocalEmbedder::vector(text, u32::try_from(dimensions).unwrap_or(1024));
            JsonAnswer {
                status: 200,
                error_type: None,
                body: json!({
                    "embedding": vector,
                    "inputTextTokenCount": input_tokens,
                    "embeddingsByType": { "float": vector },
                }),
            }
        }
        Answer::Garbled => JsonAnswer {
            status: 200,
            error_type: None,
            body: json!({ "vector": "not Titan's shape" }),
        },
        Answer::Error { .. } | Answer::Status(_) => error_answer(answer),
        _ => error_answer(&Answer::error(400, "ValidationException")),
    }
}

/// `/model/anthropic.claude-v2%3A1/converse` -> `anthropic.claude-v2:1`.
fn model_id_of(path: &str) -> String {
    let encoded = path
        .strip_prefix("/model/")
        .and_then(|rest| {
            rest.strip_suffix("/converse")
                .or_else(|| rest.strip_suffix("/converse-stream"))
                .or_else(|| rest.strip_suffix("/invoke"))
        })
        .unwrap_or_default();
    percent_decode_str(encoded).decode_utf8_lossy().into_owned()
}

/// A JSON response: status, `x-amzn-errortype` if any, body.
struct JsonAnswer {
    status: u16,
    error_type: Option<&'static str>,
    body: Value,
}

/// A stream's reply all at once; a stream that would fail midway fails
/// before the reply instead, with Converse's error for the same cause.
fn converse_answer(streamed: &Streamed) -> JsonAnswer {
    if let Some((_, exception_type)) = streamed.failure {
        let (status, error_type) = match exception_type {
            "throttlingException" => (429, "ThrottlingException"),
            "serviceUnavailableException" => (503, "ServiceUnavailableException"),
            "validationException" => (400, "ValidationException"),
            "internalServerException" => (500, "InternalServerException"),
            _ => (424, "ModelErrorException"),
        };
        return error_answer(&Answer::error(status, error_type));
    }
    let mut content = if streamed.pieces.is_empty() {
        json!([])
    } else {
        json!([{ "text": streamed.text() }])
    };
    for (id, name, arguments) in &streamed.tool_uses {
        let input: Value = serde_json::from_str(&arguments.concat()).unwrap_or(json!({}));
        content
            .as_array_mut()
            .expect("an array")
            .push(json!({ "toolUse": { "toolUseId": id, "name": name, "input": input } }));
    }
    let (input, output) = streamed.usage.unwrap_or((12, 5));
    JsonAnswer {
        status: 200,
        error_type: None,
        body: json!({
            "output": { "message": { "role": "assistant", "content": content } },
            "stopReason": streamed.stop_reason,
            "usage": { "inputTokens": input, "outputTokens": output, "totalTokens": input + output },
            "metrics": { "latencyMs": 42 },
        }),
    }
}

fn error_answer(answer: &Answer) -> JsonAnswer {
    match answer {
        Answer::Error { status, error_type } => JsonAnswer {
            status: *status,
            error_type: Some(error_type),
            body: json!({ "message": format!("stub {error_type}") }),
        },
        Answer::Status(status) => JsonAnswer {
            status: *status,
            error_type: None,
            body: json!({ "detail": "not Bedrock's shape" }),
        },
        other => unreachable!("not an error answer: {other:?}"),
    }
}

fn write_json(writer: &mut impl Write, answer: &JsonAnswer) -> std::io::Result<()> {
    let body = answer.body.to_string();
    let mut head = format!(
        "HTTP/1.1 {} Stub\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
        answer.status,
        body.len()
    );
    if let Some(error_type) = answer.error_type {
        head.push_str(&format!("x-amzn-errortype: {error_type}\r\n"));
    }
    head.push_str("\r\n");
    writer.write_all(head.as_bytes())?;
    writer.write_all(body.as_bytes())?;
    writer.flush()
}

/// The client closed the connection while events were left to write.
struct HungUp;

/// Writes a ConverseStream response: the head, then each event as one
/// HTTP chunk, as soon as it is due. `Ok(false)` when the stream ended the
/// connection (after a failure), as Bedrock does.
/// Writes `streamed`'s events; `piece_sent` is called as each text piece
/// has been written.
fn write_events(
    writer: &mut impl Write,
    streamed: &Streamed,
    piece_sent: &mut dyn FnMut(),
) -> Result<bool, HungUp> {
    let head = "HTTP/1.1 200 OK\r\ncontent-type: application/vnd.amazon.eventstream\r\n\
                transfer-encoding: chunked\r\nx-amzn-requestid: stub-stream\r\n\r\n";
    write_now(writer, head.as_bytes()).map_err(|_| HungUp)?;
    std::thread::sleep(streamed.first_event_after);
    send(
        writer,
        event("messageStart", json!({ "role": "assistant" })),
    )?;
    let shown = streamed
        .failure
        .map_or(streamed.pieces.len(), |(after, _)| after);
    for (index, piece) in streamed.pieces.iter().take(shown).enumerate() {
        if index > 0 {
            if let Some(gate) = &streamed.gate_after_first {
                gate.wait();
            }
            std::thread::sleep(streamed.between_pieces);
        }
        let delta = json!({ "contentBlockIndex": 0, "delta": { "text": piece } });
        send(writer, event("contentBlockDelta", delta))?;
        piece_sent();
    }
    if let Some((_, exception_type)) = streamed.failure {
        send(writer, exception(exception_type))?;
        // The end of the body, then of the connection: nothing follows.
        let _ = write_now(writer, b"0\r\n\r\n");
        return Ok(false);
    }
    send(
        writer,
        event("contentBlockStop", json!({ "contentBlockIndex": 0 })),
    )?;
    for (i, (id, name, arguments)) in streamed.tool_uses.iter().enumerate() {
        let index = i + 1;
        let start = json!({
            "contentBlockIndex": index,
            "start": { "toolUse": { "toolUseId": id, "name": name } },
        });
        send(writer, event("contentBlockStart", start))?;
        for piece in arguments {
            let delta =
                json!({ "contentBlockIndex": index, "delta": { "toolUse": { "input": piece } } });
            send(writer, event("contentBlockDelta", delta))?;
        }
        send(
            writer,
            event("contentBlockStop", json!({ "contentBlockIndex": index })),
        )?;
    }
    send(
        writer,
        event("messageStop", json!({ "stopReason": streamed.stop_reason })),
    )?;
    if let Some((input, output)) = streamed.usage {
        let (read, write) = streamed.cache;
        let metadata = json!({
            "usage": {
                "inputTokens": input,
                "outputTokens": output,
                "cacheReadInputTokens": read,
                "cacheWriteInputTokens": write,
                "totalTokens": input + output + read + write,
            },
            "metrics": { "latencyMs": 42 },
        });
        send(writer, event("metadata", metadata))?;
    }
    // Every event is out: a client that leaves now has not hung up on any.
    Ok(write_now(writer, b"0\r\n\r\n").is_ok())
}

/// One event-stream message as one HTTP chunk.
fn send(writer: &mut impl Write, message: Message) -> Result<(), HungUp> {
    let mut frame = Vec::new();
    write_message_to(&message, &mut frame).expect("an event-stream frame");
    let mut chunk = format!("{:x}\r\n", frame.len()).into_bytes();
    chunk.extend_from_slice(&frame);
    chunk.extend_from_slice(b"\r\n");
    write_now(writer, &chunk).map_err(|_| HungUp)
}

fn write_now(writer: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
    writer.write_all(bytes)?;
    writer.flush()
}

fn event(event_type: &'static str, payload: Value) -> Message {
    message("event", (":event-type", event_type), payload)
}

fn exception(exception_type: &'static str) -> Message {
    let payload = json!({
        "message": format!("stub {exception_type}"),
        "originalStatusCode": 500,
        "originalMessage": "stub model failure",
    });
    message("exception", (":exception-type", exception_type), payload)
}

/// One event-stream message of JSON, as Bedrock frames an event or an
/// exception: its message type, and the header that names its kind.
fn message(
    message_type: &'static str,
    (type_header, type_name): (&'static str, &'static str),
    payload: Value,
) -> Message {
    Message::new(payload.to_string())
        .add_header(Header::new(
            type_header,
            HeaderValue::String(type_name.into()),
        ))
        .add_header(Header::new(
            ":content-type",
            HeaderValue::String("application/json".into()),
        ))
        .add_header(Header::new(
            ":message-type",
            HeaderValue::String(message_type.into()),
        ))
}

#[cfg(test)]
mod tests {
    use super::model_id_of;

    #[test]
    fn a_model_id_is_read_back_from_its_path() {
        assert_eq!(
            model_id_of("/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"),
            "anthropic.claude-3-haiku-20240307-v1:0"
        );
        assert_eq!(
            model_id_of("/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream"),
            "anthropic.claude-3-haiku-20240307-v1:0"
        );
    }
}
