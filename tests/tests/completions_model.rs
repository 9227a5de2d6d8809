//! `/v1/chat/completions` with a paid model: the production Bedrock
//! responder streaming from the local ConverseStream stand-in, the books in
//! DynamoDB Local. A hold before the model, a settle before `[DONE]`, the
//! charge for what was written when the model fails midway or the client
//! hangs up, never more than the hold; every test ends with the ledger.

use std::sync::Arc;
use std::time::Duration;

use api_tests::completion::*;
use api_tests::converse_stub::{Answer, ConverseStub, Gate, Streamed};
use api_tests::*;
use aws_sdk_dynamodb::types::AttributeValue;
use chat_core::config::DEFAULT_OPEN_CALLS_PER_USER;
use chat_core::pricing::{Pricing, UsagePrices, INPUT_OVERHEAD_TOKENS, MESSAGE_OVERHEAD_TOKENS};
use chat_core::{App, Config};
use chat_model::ModelConfig;
use devtools::dynamodb_local::{client, fresh_tables, quiet_app};
use serde_json::{json, Value};

const MODEL_ID: &str = "test-model";
const PRICES: UsagePrices = UsagePrices::plain(3, 15);
/// Far longer than anything here takes on a slow machine.
const PATIENCE: Duration = Duration::from_secs(30);

async fn app_with(stub: &ConverseStub, pricing: Pricing, initial_tokens: u32) -> Arc<App> {
    app_capped(stub, pricing, initial_tokens, DEFAULT_OPEN_CALLS_PER_USER).await
}

/// [`app_with`], with `open_calls` model calls a user may have open at once.
async fn app_capped(
    stub: &ConverseStub,
    pricing: Pricing,
    initial_tokens: u32,
    open_calls: u32,
) -> Arc<App> {
    let client = client();
    let mut config = Config::with_tables(fresh_tables(&client).await);
    config.pricing = pricing;
    config.initial_tokens = initial_tokens;
    config.open_calls_per_user = open_calls;
    let mut app = quiet_app(config, client);
    let mut model = ModelConfig::new(MODEL_ID);
    model.max_attempts = 1;
    app.models =
        chat_core::served::Models::only(Arc::new(stub.responder(model)), app.config.pricing);
    Arc::new(app)
}

fn request(stream: bool) -> Value {
    json!({
        "model": MODEL_ID,
        "stream": stream,
        "max_tokens": 100,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "How are you?"},
        ],
    })
}

/// The UTF-8 bytes of everything `request` sends the model.
const INPUT_BYTES: u64 =
    ("Be brief.".len() + "Hi".len() + "Hello!".len() + "How are you?".len()) as u64;

/// The hold's entry of `username`'s only completion, once it is closed.
async fn closed_hold(
    app: &App,
    username: &str,
) -> std::collections::HashMap<String, AttributeValue> {
    let started = std::time::Instant::now();
    loop {
        let holds = app
            .store
            .client()
            .query()
            .table_name(&app.store.tables().chats)
            .key_condition_expression("username = :u AND begins_with(chat_id, :p)")
            .expression_attribute_values(":u", AttributeValue::S(username.into()))
            .expression_attribute_values(":p", AttributeValue::S("ledger#hold#".into()))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .items
            .unwrap_or_default();
        assert_eq!(holds.len(), 1);
        if holds[0]["state"].as_s().unwrap() != "open" {
            return holds[0].clone();
        }
        assert!(started.elapsed() < PATIENCE, "the hold was never closed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn amount(item: &std::collections::HashMap<String, AttributeValue>) -> i64 {
    item["amount"].as_n().unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_stream_is_charged_the_models_usage_before_done_and_saved() {
    let stub = ConverseStub::start(Answer::Stream(
        Streamed::pieces(&["Fine, ", "thanks!"]).usage(100, 500),
    ));
    let app = app_with(&stub, Pricing::Usage(PRICES), 4000).await;
    let token = signed_up(&app, "alice").await;
    let mut body = request(true);
    body["max_tokens"] = json!(1000);
    body["stream_options"] = json!({"include_usage": true});
    let answer = complete(&app, &token, body).await;
    assert_eq!(answer.status, 200);
    let events = answer.events();
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert_eq!(streamed_text(&chunks), "Fine, thanks!");
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!(usage["prompt_tokens"], 100);
    assert_eq!(usage["completion_tokens"], 500);
    // The whole conversation reached the model, system prompt apart.
    let sent = &stub.calls()[0].body;
    assert_eq!(sent["system"][0]["text"], "Be brief.");
    assert_eq!(sent["messages"].as_array().unwrap().len(), 3);
    assert_eq!(sent["inferenceConfig"]["maxTokens"], 1000);
    // 100 x 3 + 500 x 15 = 7800 thousandths: 8, under the hold's
    // (37 + 4 x 16 + 64) x 3 + 1000 x 15 = 15495 thousandths: 16.
    assert_eq!(stored_tokens(&app, "alice").await, Some(4000 - 8));
    assert_eq!(
        closed_hold(&app, "alice").await["state"].as_s().unwrap(),
        "settled"
    );
    let page = history::handle(&app, with_auth(event("history"), &token))
        .await
        .unwrap();
    let chat = &json_of(&page)["chats"][0];
    assert_eq!(chat["message"], "How are you?");
    assert_eq!(chat["response"], "Fine, thanks!");
    assert_eq!(chat["cost"], 8);
    // Every chunk names the chat it is saved as, the first too, sent
    // before the model wrote anything.
    let id = format!(
        "chatcmpl-{}",
        chat["chat_id"].as_str().unwrap().replace('-', "")
    );
    assert!(
        chunks.iter().all(|chunk| chunk["id"] == id.as_str()),
        "{chunks:?}"
    );
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_client_that_hangs_up_after_the_first_chunk_pays_for_what_was_written() {
    let pieces: Vec<String> = (10..50).map(|i| format!("word{i} ")).collect();
    let pieces: Vec<&str> = pieces.iter().map(String::as_str).collect();
    // The first piece at once; the rest once the client has gone, paced
    // so that the model is still writing when the function stops it.
    let gate = Gate::default();
    let stub = ConverseStub::start(Answer::Stream(
        Streamed::pieces(&pieces)
            .gated_after_first(&gate)
            .between_pieces(Duration::from_millis(100)),
    ));
    let app = app_with(&stub, Pricing::Usage(PRICES), 4000).await;
    let token = signed_up(&app, "alice").await;
    let response = open(&app, &token, &request(true)).await;
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    // The role chunk, then the first piece of text: then the client goes.
    let mut seen = String::new();
    while !seen.contains("word10") {
        let bytes = next_bytes(&mut body).await.expect("a first piece");
        seen.push_str(&String::from_utf8(bytes).unwrap());
    }
    drop(body);
    gate.open();
    // The function reads the second piece, finds the client gone, and
    // stops reading the model, which closes its stream.
    assert_eq!(stub.wait_for_hang_ups(1, PATIENCE).await, 1);
    let hold = closed_hold(&app, "alice").await;
    assert_eq!(hold["state"].as_s().unwrap(), "settled");
    // Charged the bound of what it read and wrote: the conversation's
    // bytes, 16 per message and 64 in all; the two pieces' 14 bytes.
    let read = INPUT_BYTES + 4 * MESSAGE_OVERHEAD_TOKENS as u64 + INPUT_OVERHEAD_TOKENS;
    let cost = PRICES.cost(chat_core::pricing::Usage {
        input_tokens: read,
        output_tokens: "word10 word11 ".len() as u64,
        ..Default::default()
    });
    assert_eq!(
        stored_tokens(&app, "alice").await,
        Some(4000 - cost.get() as i64)
    );
    assert!(cost.get() as i64 <= -amount(&hold));
    let page = history::handle(&app, with_auth(event("history"), &token))
        .await
        .unwrap();
    let saved = &json_of(&page)["chats"][0];
    assert_eq!(saved["response"], "word10 word11 ");
    assert_eq!(saved["cost"], cost.get());
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_hang_up_is_charged_no_more_output_than_max_tokens() {
    // One piece longer than the reply's cap, then the client goes.
    let long = "x".repeat(300);
    let mut pieces = vec![long.as_str()];
    pieces.extend(["more "; 40]);
    let gate = Gate::default();
    let stub = ConverseStub::start(Answer::Stream(
        Streamed::pieces(&pieces)
            .gated_after_first(&gate)
            .between_pieces(Duration::from_millis(100)),
    ));
    let app = app_with(&stub, Pricing::Usage(PRICES), 4000).await;
    let token = signed_up(&app, "alice").await;
    let response = open(&app, &token, &request(true)).await;
    let mut body = response.into_body();
    let mut seen = String::new();
    while !seen.contains(&long) {
        seen.push_str(&String::from_utf8(next_bytes(&mut body).await.unwrap()).unwrap());
    }
    drop(body);
    gate.open();
    assert_eq!(stub.wait_for_hang_ups(1, PATIENCE).await, 1);
    let hold = closed_hold(&app, "alice").await;
    let read = INPUT_BYTES + 4 * MESSAGE_OVERHEAD_TOKENS as u64 + INPUT_OVERHEAD_TOKENS;
    // 305 bytes written, charged as `max_tokens` (100): the hold exactly.
    let cost = PRICES.cost(chat_core::pricing::Usage {
        input_tokens: read,
        output_tokens: 100,
        ..Default::default()
    });
    assert_eq!(cost.get() as i64, -amount(&hold));
    assert_eq!(
        stored_tokens(&app, "alice").await,
        Some(4000 - cost.get() as i64)
    );
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_model_failing_midway_charges_the_text_and_ends_with_an_error_event() {
    let stub = ConverseStub::start(Answer::Stream(
        Streamed::pieces(&["one ", "two ", "three"]).failing_after(2, "modelStreamErrorException"),
    ));
    let app = app_with(&stub, Pricing::Usage(PRICES), 4000).await;
    let token = signed_up(&app, "alice").await;
    let answer = complete(&app, &token, request(true)).await;
    assert_eq!(answer.status, 200);
    let events = answer.events();
    assert!(!events.contains(&"[DONE]".to_owned()));
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["type"], "server_error");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert_eq!(streamed_text(&chunks), "one two ");
    let expected = PRICES.cost(chat_core::pricing::Usage {
        input_tokens: INPUT_BYTES + INPUT_OVERHEAD_TOKENS,
        output_tokens: "one two ".len() as u64,
        ..Default::default()
    });
    assert_eq!(
        stored_tokens(&app, "alice").await,
        Some(4000 - expected.get() as i64)
    );
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_throttled_model_is_a_retryable_503_before_any_chunk_and_costs_nothing() {
    let stub = ConverseStub::start(Answer::error(429, "ThrottlingException"));
    let app = app_with(&stub, Pricing::Usage(PRICES), 4000).await;
    let token = signed_up(&app, "alice").await;
    for stream in [true, false] {
        let answer = complete(&app, &token, request(stream)).await;
        assert_eq!(answer.status, 503);
        assert_eq!(answer.header("x-should-retry"), Some("true"));
        assert!(answer.header("retry-after").is_some());
        assert_eq!(answer.json()["error"]["code"], "model_unavailable");
    }
    assert_eq!(stored_tokens(&app, "alice").await, Some(4000));
    assert_eq!(stored_chats(&app, "alice").await, 0);
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_slow_model_still_answers_whole_and_a_failed_one_unstreamed_is_charged_its_text() {
    let stub = ConverseStub::scripted(|n| match n {
        0 => Answer::Stream(
            Streamed::pieces(&["late ", "but ", "here"])
                .first_event_after(Duration::from_secs(2))
                .usage(10, 3),
        ),
        _ => Answer::Stream(
            Streamed::pieces(&["a ", "b"]).failing_after(1, "internalServerException"),
        ),
    });
    let app = app_with(&stub, Pricing::Flat(100), 4000).await;
    let token = signed_up(&app, "alice").await;
    let answer = complete(&app, &token, request(false)).await;
    assert_eq!(answer.status, 200);
    let body = answer.json();
    assert_eq!(body["choices"][0]["message"]["content"], "late but here");
    assert_eq!(body["usage"]["completion_tokens"], 3);
    assert_eq!(answer.header("tokens-charged"), Some("100"));
    // Unstreamed, a model failing midway still wrote what it wrote: the
    // client gets it, cut short, and pays for it (a flat price here).
    let failed = complete(&app, &token, request(false)).await;
    assert_eq!(failed.status, 200);
    let body = failed.json();
    assert_eq!(body["choices"][0]["message"]["content"], "a ");
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    assert_eq!(failed.header("tokens-charged"), Some("100"));
    assert_eq!(stored_tokens(&app, "alice").await, Some(3800));
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_simultaneous_streams_on_a_model_hold_exactly_what_the_balance_covers() {
    let stub = ConverseStub::start(Answer::Stream(
        Streamed::pieces(&["ok"]).first_event_after(Duration::from_millis(200)),
    ));
    // The balance alone decides here (the per-user cap has a test of its own).
    let app = app_capped(&stub, Pricing::Flat(100), 4000, 0).await;
    let token = signed_up(&app, "alice").await;
    let answers = simultaneous_completions(&app, &token, &request(true), 50).await;
    let ok = answers.iter().filter(|a| a.status == 200).count();
    let refused = answers.iter().filter(|a| a.status == 429).count();
    assert_eq!((ok, refused), (40, 10));
    for answer in answers.iter().filter(|a| a.status == 429) {
        assert_eq!(answer.json()["error"]["code"], "insufficient_quota");
    }
    assert_eq!(
        stub.call_count(),
        40,
        "the model is reached only under a hold"
    );
    assert_eq!(stored_tokens(&app, "alice").await, Some(0));
    assert_eq!(stored_chats(&app, "alice").await, 40);
    assert_ledger_balances(&app, "alice").await;
}
