//! `/v1` streaming, in process: streamed completions through the
//! completions handler, whose model is the production Bedrock responder
//! against the ConverseStream stand-in on loopback (the real SDK: request
//! signing, event-stream framing), its books in DynamoDB Local.
//!
//! - **Relay**: when each piece of the reply reaches the client (the
//!   handler's body) beside when the stand-in wrote it. The first piece's
//!   is our time to first byte over the stand-in's own; the others' the
//!   overhead of every chunk after (decode, chunk, SSE, count).
//! - **Before the model**: from the request to the stand-in receiving the
//!   call: the token check, the hold's transaction, the SDK's request.
//! - **Streams a second**: 16 clients at once, each its own user, each
//!   stream 20 pieces without pause, read to `[DONE]`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use api_tests::completion::{completion_request, events_of};
use api_tests::converse_stub::{Answer, ConverseStub, Streamed};
use api_tests::{assert_ledger_balances, signed_up, StreamBody};
use chat_core::pricing::{Pricing, UsagePrices};
use chat_core::served::Models;
use chat_core::{App, Config};
use chat_model::ModelConfig;
use devtools::dynamodb_local::{client, fresh_tables, quiet_app};
use http_body_util::BodyExt;
use serde_json::{json, Value};

use crate::stats::{round, Summary};

const MODEL_ID: &str = "bench-model";
/// Pieces of a reply, each a word.
const PIECES: usize = 20;
/// The stand-in's pause between pieces in the relay part, so that each
/// piece travels on its own rather than in one read with the next.
const PACE: Duration = Duration::from_millis(2);
const CLIENTS: usize = 16;

pub async fn run(iterations: usize) -> Value {
    let words: Vec<String> = (0..PIECES).map(|i| format!("word{i} ")).collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let paced = ConverseStub::start(Answer::Stream(
        Streamed::pieces(&words)
            .between_pieces(PACE)
            .usage(30, PIECES as u64),
    ));
    let app = app_on(&paced).await;
    let token = signed_up(&app, "alice").await;

    let (mut first, mut later, mut before) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..iterations {
        let call = paced.call_count();
        let started = Instant::now();
        let pieces = stream(&app, &token).await;
        let sent = paced.piece_times(call);
        let received = paced.received_at(call);
        assert_eq!(pieces.len(), PIECES, "every piece reached the client");
        assert_eq!(sent.len(), PIECES, "the stand-in wrote every piece");
        before.push(received - started);
        for (index, (at, written)) in pieces.iter().zip(&sent).enumerate() {
            let relay = at.saturating_duration_since(*written);
            if index == 0 {
                first.push(relay);
            } else {
                later.push(relay);
            }
        }
    }
    assert_ledger_balances(&app, "alice").await;
    let (first, later, before) = (
        Summary::of(&first),
        Summary::of(&later),
        Summary::of(&before),
    );

    let unpaced = ConverseStub::start(Answer::Stream(
        Streamed::pieces(&words).usage(30, PIECES as u64),
    ));
    let app = app_on(&unpaced).await;
    let mut tokens = Vec::new();
    for client in 0..CLIENTS {
        tokens.push(signed_up(&app, &format!("client{client}")).await);
    }
    let total = iterations.max(CLIENTS);
    let started = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (app, token) = (app.clone(), tokens[client].clone());
            let mine = total / CLIENTS + usize::from(client < total % CLIENTS);
            tokio::spawn(async move {
                for _ in 0..mine {
                    assert_eq!(stream(&app, &token).await.len(), PIECES);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed();
    let per_second = total as f64 / elapsed.as_secs_f64();
    for client in 0..CLIENTS {
        assert_ledger_balances(&app, &format!("client{client}")).await;
    }

    println!(
        "\n## /v1 streaming in process ({iterations} streams of {PIECES} pieces, the stand-in pausing {} ms between them)",
        PACE.as_millis()
    );
    println!("{:<38} {:>9} {:>9} {:>9}", "", "p50 ms", "p99 ms", "max ms");
    for (name, summary) in [
        ("first piece: stand-in to client", first),
        ("each later piece: stand-in to client", later),
        ("request to the stand-in's call", before),
    ] {
        println!(
            "{name:<38} {:>9.3} {:>9.3} {:>9.3}",
            summary.p50, summary.p99, summary.max
        );
    }
    println!(
        "streams a second at {CLIENTS} clients, {PIECES} pieces each without pause: {per_second:.0} ({total} in {:.2} s)",
        elapsed.as_secs_f64()
    );
    json!({
        "pieces": PIECES,
        "pace_ms": PACE.as_millis() as u64,
        "first_piece_relay_ms": first.json(),
        "later_piece_relay_ms": later.json(),
        "request_to_model_call_ms": before.json(),
        "streams_per_second": { "clients": CLIENTS, "streams": total, "per_second": round(per_second) },
    })
}

/// An app whose one model is the production Bedrock responder against
/// `stub`, priced by usage, with funds and open calls for every stream.
async fn app_on(stub: &ConverseStub) -> Arc<App> {
    let client = client();
    let mut config = Config::with_tables(fresh_tables(&client).await);
    let pricing = Pricing::Usage(UsagePrices::plain(1, 1));
    config.pricing = pricing;
    config.initial_tokens = 1_000_000_000;
    config.chats_per_minute = 0;
    config.open_calls_per_user = 0;
    let mut app = quiet_app(config, client);
    let mut model = ModelConfig::new(MODEL_ID);
    model.max_attempts = 1;
    app.models = Models::only(Arc::new(stub.responder(model)), pricing);
    Arc::new(app)
}

/// One streamed completion read to its end: when each piece of text
/// reached the client, in order. Fails the run on anything but a 200
/// stream that ends with `[DONE]`.
async fn stream(app: &Arc<App>, token: &str) -> Vec<Instant> {
    let body = json!({
        "model": MODEL_ID,
        "stream": true,
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "How fast is this?"}],
    });
    let request = completion_request(Some(&format!("Bearer {token}")), &body.to_string());
    let response = completions::handle(app.clone(), request).await.unwrap();
    assert_eq!(response.status(), 200);
    let mut body: StreamBody = response.into_body();
    let (mut text, mut read, mut pieces) = (String::new(), 0, Vec::new());
    while let Some(frame) = body.frame().await {
        let at = Instant::now();
        let Ok(data) = frame.expect("the stream does not fail").into_data() else {
            continue;
        };
        text.push_str(std::str::from_utf8(&data).expect("UTF-8"));
        // Only whole events: up to the last blank line.
        let Some(end) = text.rfind("\n\n") else {
            continue;
        };
        for event in events_of(&text[read..end + 2]) {
            if event == "[DONE]" {
                continue;
            }
            let chunk: Value = serde_json::from_str(&event).unwrap();
            let content = chunk["choices"][0]["delta"]["content"].as_str();
            if content.is_some_and(|c| !c.is_empty()) {
                pieces.push(at);
            }
        }
        read = end + 2;
    }
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    pieces
}
