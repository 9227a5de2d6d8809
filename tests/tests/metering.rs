//! Metering a paid model: a hold before the model, a settle to what it
//! used after, a release when it fails, the sweeper for a function that
//! died in between, and the ledger that adds up through all of it. The
//! production Bedrock responder talks to the local Converse stand-in; the
//! books are DynamoDB Local's.

use std::sync::Arc;
use std::time::Duration;

use api_tests::calls::counted_app;
use api_tests::converse_stub::{Answer, ConverseStub};
use api_tests::runtime_api::{debug_binary, start};
use api_tests::*;
use aws_sdk_dynamodb::types::AttributeValue;
use chat_core::clock::Timestamp;
use chat_core::deadline::Deadline;
use chat_core::domain::{AuthToken, ChatMessage};
use chat_core::pricing::{Pricing, UsagePrices};
use chat_core::store::{ChatRecord, HoldOutcome, HoldRequest, ReleaseReason};
use chat_core::App;
use chat_model::ModelConfig;
use devtools::dynamodb_local::fresh_app;

const MODEL_ID: &str = "test-model";

/// The production settings, but one attempt, so call counts are exact.
fn one_attempt() -> ModelConfig {
    let mut model = ModelConfig::new(MODEL_ID);
    model.max_attempts = 1;
    model
}

async fn app_with(stub: &ConverseStub, pricing: Pricing, initial_tokens: u32) -> App {
    let mut app = fresh_app().await;
    app.config.pricing = pricing;
    app.config.initial_tokens = initial_tokens;
    app.responder = Arc::new(stub.responder(one_attempt()));
    app
}

const PRICES: UsagePrices = UsagePrices {
    input_per_1000: 3,
    output_per_1000: 15,
};

/// Items of `username`'s partition whose sort key starts with `prefix`.
async fn entries(
    app: &App,
    username: &str,
    prefix: &str,
) -> Vec<std::collections::HashMap<String, AttributeValue>> {
    app.store
        .client()
        .query()
        .table_name(&app.store.tables().chats)
        .key_condition_expression("username = :u AND begins_with(chat_id, :p)")
        .expression_attribute_values(":u", AttributeValue::S(username.into()))
        .expression_attribute_values(":p", AttributeValue::S(prefix.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default()
}

fn number(item: &std::collections::HashMap<String, AttributeValue>, name: &str) -> i64 {
    item[name].as_n().unwrap().parse().unwrap()
}

#[tokio::test]
async fn usage_pricing_charges_exactly_what_the_model_reports() {
    let stub = ConverseStub::start(Answer::used("Bonjour !", 1234, 567));
    let app = app_with(&stub, Pricing::Usage(PRICES), 4000).await;
    let token = signed_up(&app, "alice").await;

    let response = chat_as(&app, &token, "Hello, how are you?").await;
    assert_eq!(response.status(), 200);
    assert_eq!(json_of(&response)["response"], "Bonjour !");
    // 1234 x 3 + 567 x 15 = 12207 thousandths of a token: 13.
    assert_eq!(response.headers()["tokens-charged"], "13");
    assert_eq!(stored_tokens(&app, "alice").await, Some(4000 - 13));

    let page = history::handle(&app, with_auth(event("history"), &token))
        .await
        .unwrap();
    let chat = &json_of(&page)["chats"][0];
    assert_eq!(chat["cost"], 13);
    let saved = &entries(&app, "alice", "0").await[0];
    assert_eq!(
        (
            number(saved, "input_tokens"),
            number(saved, "output_tokens")
        ),
        (1234, 567),
        "the chat records the model's usage"
    );
    // Grant, hold, and the chat (which is the settle's entry).
    assert_eq!(audit_of(&app, "alice").await.entries, 3);
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn the_hold_covers_the_message_and_the_reply_cap_and_the_rest_goes_back() {
    let stub = ConverseStub::start(Answer::used("short", 10, 2));
    let app = app_with(&stub, Pricing::Usage(PRICES), 4000).await;
    let token = signed_up(&app, "alice").await;
    let message = "x".repeat(1000);
    assert_eq!(chat_as(&app, &token, &message).await.status(), 200);
    let hold = &entries(&app, "alice", "ledger#hold#").await[0];
    // (1000 bytes + 64) x 3 + 1024 x 15 = 18552 thousandths: 19.
    assert_eq!(number(hold, "amount"), -19);
    assert_eq!(hold["state"].as_s().unwrap(), "settled");
    // 10 x 3 + 2 x 15 = 60 thousandths: 1 token charged, 18 given back.
    assert_eq!(stored_tokens(&app, "alice").await, Some(3999));
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_simultaneous_chats_on_three_holds_reach_the_model_three_times() {
    let stub = ConverseStub::start(Answer::after(
        Duration::from_millis(100),
        Answer::text("worth it"),
    ));
    let app = Arc::new(app_with(&stub, Pricing::Flat(100), 300).await);
    let token = signed_up(&app, "alice").await;
    let responses = simultaneous_chats(&app, &token, 100).await;
    let ok = responses.iter().filter(|r| r.status() == 200).count();
    let refused = responses.iter().filter(|r| r.status() == 402).count();
    assert_eq!((ok, refused), (3, 97));
    assert_eq!(
        stub.call_count(),
        3,
        "the model is reached only under a hold"
    );
    assert_eq!(stored_tokens(&app, "alice").await, Some(0));
    assert_eq!(stored_chats(&app, "alice").await, 3);
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_failing_model_gives_the_whole_hold_back() {
    let stub = ConverseStub::start(Answer::error(400, "ValidationException"));
    let app = app_with(&stub, Pricing::Usage(PRICES), 4000).await;
    let token = signed_up(&app, "alice").await;
    let response = chat_as(&app, &token, "hello").await;
    assert_eq!(response.status(), 502);
    assert_eq!(stored_tokens(&app, "alice").await, Some(4000));
    assert_eq!(stored_chats(&app, "alice").await, 0);
    let holds = entries(&app, "alice", "ledger#hold#").await;
    let releases = entries(&app, "alice", "ledger#release#").await;
    assert_eq!(holds[0]["state"].as_s().unwrap(), "released");
    assert_eq!(number(&releases[0], "amount"), -number(&holds[0], "amount"));
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_model_chat_is_two_round_trips_hold_and_settle() {
    let (mut app, calls) = counted_app().await;
    let stub = ConverseStub::start(Answer::text("hi"));
    app.responder = Arc::new(stub.responder(one_attempt()));
    let token = signed_up(&app, "alice").await;
    calls.take();
    assert_eq!(chat_as(&app, &token, "hello").await.status(), 200);
    assert_eq!(calls.take(), ["TransactWriteItems", "TransactWriteItems"]);
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_retried_key_holds_once_calls_the_model_once_and_replays() {
    // Slow enough that the retry below is always inside the model's call,
    // however busy the emulator is.
    let stub = ConverseStub::start(Answer::after(Duration::from_secs(3), Answer::text("once")));
    let app = Arc::new(app_with(&stub, Pricing::Flat(100), 4000).await);
    let token = signed_up(&app, "alice").await;

    let first = {
        let (app, token) = (app.clone(), token.clone());
        tokio::spawn(async move { keyed_chat_as(&app, &token, "k1", "hello").await })
    };
    // While the first waits for the model, the same key is still being
    // answered: the retry is told to wait, and holds nothing.
    wait_for_model_call(&stub).await;
    let early = keyed_chat_as(&app, &token, "k1", "hello").await;
    assert_eq!(early.status(), 409);
    assert_eq!(json_of(&early)["error"], "idempotency_key_in_progress");
    assert!(early.headers().contains_key("retry-after"));

    let first = first.await.unwrap();
    assert_eq!(first.status(), 200);
    let replay = keyed_chat_as(&app, &token, "k1", "hello").await;
    assert_eq!(replay.status(), 200);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(replay.headers()["tokens-charged"], "0");
    assert_eq!(json_of(&replay)["response"], "once");
    assert_eq!(stub.call_count(), 1);
    assert_eq!(entries(&app, "alice", "ledger#hold#").await.len(), 1);
    assert_eq!(stored_tokens(&app, "alice").await, Some(3900));
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_key_whose_model_failed_may_be_tried_again() {
    let stub = ConverseStub::scripted(|n| match n {
        0 => Answer::error(503, "ServiceUnavailableException"),
        _ => Answer::text("second time lucky"),
    });
    let app = app_with(&stub, Pricing::Flat(100), 4000).await;
    let token = signed_up(&app, "alice").await;
    assert_eq!(keyed_chat_as(&app, &token, "k", "hi").await.status(), 503);
    let again = keyed_chat_as(&app, &token, "k", "hi").await;
    assert_eq!(again.status(), 200);
    assert_eq!(json_of(&again)["response"], "second time lucky");
    assert_eq!(stored_tokens(&app, "alice").await, Some(3900));
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_settle_after_the_sweeper_gave_the_hold_back_applies_nothing() {
    let stub = ConverseStub::start(Answer::text("unused"));
    let app = app_with(&stub, Pricing::Flat(100), 4000).await;
    let raw = signed_up(&app, "alice").await;
    let token = app
        .auth
        .verify(AuthToken::parse(&raw).unwrap())
        .await
        .unwrap();
    let message = ChatMessage::parse("late".into()).unwrap();
    let now = Timestamp::now();
    let request = HoldRequest {
        message: &message,
        amount: 100,
        key: None,
        taken: now,
        expires: now,
    };
    let HoldOutcome::Held(hold) = app
        .store
        .take_hold(&token, &request, Deadline::none())
        .await
        .unwrap()
    else {
        panic!("a hold");
    };
    assert_eq!(stored_tokens(&app, "alice").await, Some(3900));
    let later = now.plus(Duration::from_secs(5));
    let swept = sweeper::sweep(&app, later, Deadline::none()).await.unwrap();
    assert_eq!(swept.released, 1);
    let record = ChatRecord {
        chat_id: uuid::Uuid::now_v7(),
        message: &message,
        response: "too late",
        cost: 100,
        usage: Default::default(),
        created: Timestamp::now(),
    };
    let settle = app.store.settle(&hold, &record, Deadline::none()).await;
    assert_eq!(settle.unwrap_err().code(), "unavailable");
    assert_eq!(stored_tokens(&app, "alice").await, Some(4000));
    assert_eq!(stored_chats(&app, "alice").await, 0);
    // A second sweep finds nothing to give back.
    let again = sweeper::sweep(&app, later, Deadline::none()).await.unwrap();
    assert_eq!(again.released, 0);
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_killed_functions_hold_comes_back_once_through_the_sweeper() {
    let stub = ConverseStub::start(Answer::after(
        Duration::from_secs(30),
        Answer::text("never delivered"),
    ));
    let app = fresh_app().await;
    assert_eq!(register(&app, "alice").await.status(), 201);
    start_events_session(&app).await.unwrap();
    let event = std::fs::read_to_string(events_dir().join("chat.json")).unwrap();
    let function = start(
        &debug_binary("chat"),
        &event,
        app.store.tables(),
        &[
            ("MODEL_ID", MODEL_ID),
            ("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", stub.url()),
        ],
    );
    // Wait until the function is inside the model call: its hold is open.
    let began = std::time::Instant::now();
    while stub.call_count() == 0 {
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "the function never reached the model"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    function.kill();
    assert_eq!(stored_tokens(&app, "alice").await, Some(3900), "held");
    // Mid-flight the books still add up, with the hold as its own entry.
    let audit = audit_of(&app, "alice").await;
    assert!(audit.balances());
    assert_eq!(audit.open_holds, 1);

    // Not yet past the hold's deadline: nothing to give back.
    let now = Timestamp::now();
    let early = sweeper::sweep(&app, now, Deadline::none()).await.unwrap();
    assert_eq!(early.released, 0);
    let late = now.plus(app.config.hold_ttl + Duration::from_secs(1));
    let swept = sweeper::sweep(&app, late, Deadline::none()).await.unwrap();
    assert_eq!(swept.released, 1);
    let again = sweeper::sweep(&app, late, Deadline::none()).await.unwrap();
    assert_eq!(again.released, 0, "given back once");
    assert_eq!(stored_tokens(&app, "alice").await, Some(4000));
    assert_eq!(stored_chats(&app, "alice").await, 0);
    assert_ledger_balances(&app, "alice").await;
}

/// Returns once the stand-in has been asked: the chat that asked holds its
/// tokens and is waiting for the model.
async fn wait_for_model_call(stub: &ConverseStub) {
    let began = std::time::Instant::now();
    while stub.call_count() == 0 {
        assert!(began.elapsed() < Duration::from_secs(60), "no model call");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A hold taken directly, as the chat function takes it, expiring `now`.
async fn hold_for(app: &App, raw_token: &str, message: &ChatMessage) -> chat_core::store::Hold {
    let token = app
        .auth
        .verify(AuthToken::parse(raw_token).unwrap())
        .await
        .unwrap();
    let now = Timestamp::now();
    let request = HoldRequest {
        message,
        amount: 100,
        key: None,
        taken: now,
        expires: now,
    };
    match app
        .store
        .take_hold(&token, &request, Deadline::none())
        .await
        .unwrap()
    {
        HoldOutcome::Held(hold) => hold,
        HoldOutcome::Replayed(_) => panic!("a hold"),
    }
}

#[tokio::test]
async fn a_hold_released_twice_gives_back_once_and_says_so_the_second_time() {
    let stub = ConverseStub::start(Answer::text("unused"));
    let app = app_with(&stub, Pricing::Flat(100), 4000).await;
    let token = signed_up(&app, "alice").await;
    let message = ChatMessage::parse("twice".into()).unwrap();
    let hold = hold_for(&app, &token, &message).await;
    let release = || {
        app.store
            .release(&hold, ReleaseReason::Expired, Deadline::none())
    };
    assert!(release().await.unwrap(), "the first release gives it back");
    assert!(!release().await.unwrap(), "the second finds it closed");
    assert_eq!(stored_tokens(&app, "alice").await, Some(4000));
    assert_eq!(entries(&app, "alice", "ledger#release#").await.len(), 1);
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_hold_of_a_user_named_under_the_earlier_unicode_rule_is_swept_too() {
    let stub = ConverseStub::start(Answer::text("unused"));
    let app = app_with(&stub, Pricing::Flat(100), 4000).await;
    // Registered before names became ASCII: made here by the store, as the
    // handler would have made it then.
    let jose = chat_core::domain::Username::parse_existing("josé").unwrap();
    let hash = chat_core::passwords::hash(
        chat_core::domain::Password::parse(PASSWORD.to_owned()).unwrap(),
    )
    .await
    .unwrap();
    app.store
        .create_user(
            &jose,
            hash,
            4000,
            None,
            &chat_core::domain::Source::unknown(),
            Timestamp::now(),
            Deadline::none(),
        )
        .await
        .unwrap();
    let token = logged_in(&app, "josé").await;
    let message = ChatMessage::parse("olá".into()).unwrap();
    hold_for(&app, &token, &message).await;
    let alice = signed_up(&app, "alice").await;
    hold_for(&app, &alice, &message).await;

    let later = Timestamp::now().plus(Duration::from_secs(5));
    let swept = sweeper::sweep(&app, later, Deadline::none()).await.unwrap();
    assert_eq!((swept.released, swept.failed), (2, 0));
    assert_eq!(stored_tokens(&app, "josé").await, Some(4000));
    assert_ledger_balances(&app, "josé").await;
    assert_ledger_balances(&app, "alice").await;
}
