//! Metering a paid model: a hold before the model, a settle to what it
//! used after, a release when it refuses, the sweeper for a function that
//! died in between, and the ledger that adds up through all of it. The
//! production Bedrock responder talks to the local Converse stand-in; the
//! books are DynamoDB Local's.

use chat_core::credits::Credits;
use std::sync::Arc;
use std::time::Duration;

use api_tests::calls::counted_app;
use api_tests::converse_stub::{Answer, ConverseStub, Gate};
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
    app.models = chat_core::served::Models::only(
        Arc::new(stub.responder(one_attempt())),
        app.config.pricing,
    );
    app
}

const PRICES: UsagePrices = UsagePrices::plain(3, 15);

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
    let saved = &ledger_entries(&app, "alice", "0").await[0];
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
    let hold = &ledger_entries(&app, "alice", "ledger#hold#").await[0];
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
async fn a_model_that_refuses_the_call_gives_the_whole_hold_back() {
    let stub = ConverseStub::start(Answer::error(400, "ValidationException"));
    let app = app_with(&stub, Pricing::Usage(PRICES), 4000).await;
    let token = signed_up(&app, "alice").await;
    let response = chat_as(&app, &token, "hello").await;
    assert_eq!(response.status(), 502);
    assert_eq!(stored_tokens(&app, "alice").await, Some(4000));
    assert_eq!(stored_chats(&app, "alice").await, 0);
    let holds = ledger_entries(&app, "alice", "ledger#hold#").await;
    let releases = ledger_entries(&app, "alice", "ledger#release#").await;
    assert_eq!(holds[0]["state"].as_s().unwrap(), "released");
    assert_eq!(number(&releases[0], "amount"), -number(&holds[0], "amount"));
    assert_eq!(releases[0]["reason"].as_s().unwrap(), "model_refused");
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_model_chat_is_two_round_trips_hold_and_settle() {
    let (mut app, calls) = counted_app().await;
    let stub = ConverseStub::start(Answer::text("hi"));
    app.models = chat_core::served::Models::only(
        Arc::new(stub.responder(one_attempt())),
        app.config.pricing,
    );
    let token = signed_up(&app, "alice").await;
    calls.take();
    assert_eq!(chat_as(&app, &token, "hello").await.status(), 200);
    assert_eq!(calls.take(), ["TransactWriteItems", "TransactWriteItems"]);
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_retried_key_holds_once_calls_the_model_once_and_replays() {
    // The model answers only when the test opens the gate, so the retry
    // below is inside its call however busy the machine is.
    let gate = Gate::default();
    let stub = ConverseStub::start(Answer::gated(&gate, Answer::text("once")));
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

    gate.open();
    let first = first.await.unwrap();
    assert_eq!(first.status(), 200);
    let replay = keyed_chat_as(&app, &token, "k1", "hello").await;
    assert_eq!(replay.status(), 200);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(replay.headers()["tokens-charged"], "0");
    assert_eq!(json_of(&replay)["response"], "once");
    assert_eq!(stub.call_count(), 1);
    assert_eq!(ledger_entries(&app, "alice", "ledger#hold#").await.len(), 1);
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
async fn a_settle_after_the_sweeper_charged_the_hold_applies_nothing() {
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
        amount: Credits::new(100),
        message: &message,
        model: "dummy",
        pricing: chat_core::pricing::Pricing::Flat(100),
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
    // Nothing recorded on it: the whole hold is charged.
    assert_eq!(swept.charged_at_bound, 1);
    let record = ChatRecord {
        chat_id: uuid::Uuid::now_v7(),
        model: "dummy",
        message: &message,
        response: "too late",
        replay: None,
        tool_calls: &[],
        cost: Credits::new(60),
        usage: Default::default(),
        finish: chat_core::responder::Finish::Stop,
        created: Timestamp::now(),
    };
    let settled = app.store.settle(&hold, &record, Deadline::none()).await;
    assert!(!settled.unwrap(), "the hold was closed: nothing applies");
    assert_eq!(stored_tokens(&app, "alice").await, Some(3900));
    // The sweeper's chat alone: its message, no reply.
    assert_eq!(saved_messages(&app, "alice").await, ["late"]);
    // A second sweep finds nothing to charge.
    let again = sweeper::sweep(&app, later, Deadline::none()).await.unwrap();
    assert_eq!(again.closed(), 0);
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_function_killed_during_its_model_call_is_charged_its_hold_once_by_the_sweeper() {
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

    // Not yet past the hold's deadline: nothing to close.
    let now = Timestamp::now();
    let early = sweeper::sweep(&app, now, Deadline::none()).await.unwrap();
    assert_eq!(early.closed(), 0);
    // Past it: the model was called and nothing says what it did, so the
    // hold, the bound of its work, is charged (docs/billing.md).
    let late = now.plus(app.config.hold_ttl + Duration::from_secs(1));
    let swept = sweeper::sweep(&app, late, Deadline::none()).await.unwrap();
    assert_eq!(swept.charged_at_bound, 1);
    let again = sweeper::sweep(&app, late, Deadline::none()).await.unwrap();
    assert_eq!(again.closed(), 0, "charged once");
    assert_eq!(stored_tokens(&app, "alice").await, Some(3900));
    // The charge has its chat: the message, no reply, cut short.
    let chats = ledger_entries(&app, "alice", "0").await;
    assert_eq!(chats.len(), 1);
    assert_eq!(number(&chats[0], "amount"), 0, "nothing given back");
    assert_eq!(number(&chats[0], "cost"), 100);
    assert_eq!(chats[0]["response"].as_s().unwrap(), "");
    assert_eq!(chats[0]["finish"].as_s().unwrap(), "length");
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
        amount: Credits::new(100),
        message,
        model: "dummy",
        pricing: chat_core::pricing::Pricing::Flat(100),
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
            .release(&hold, ReleaseReason::ModelRefused, Deadline::none())
    };
    assert!(release().await.unwrap(), "the first release gives it back");
    assert!(!release().await.unwrap(), "the second finds it closed");
    assert_eq!(stored_tokens(&app, "alice").await, Some(4000));
    assert_eq!(
        ledger_entries(&app, "alice", "ledger#release#").await.len(),
        1
    );
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
    assert_eq!((swept.charged_at_bound, swept.failed), (2, 0));
    assert_eq!(stored_tokens(&app, "josé").await, Some(3900));
    assert_ledger_balances(&app, "josé").await;
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_sweep_serves_every_shard_in_turn_and_closes_each_hold_once() {
    let stub = ConverseStub::start(Answer::text("unused"));
    let mut app = app_with(&stub, Pricing::Flat(100), 4000).await;
    // Many functions that died with their holds open, more than the cap on
    // open calls would let one user have at once.
    app.store = app.store.clone().with_open_calls_per_user(0);
    let token = signed_up(&app, "alice").await;
    let message = ChatMessage::parse("many".into()).unwrap();
    for _ in 0..24 {
        hold_for(&app, &token, &message).await;
    }
    let shard_of: std::collections::HashMap<String, String> =
        ledger_entries(&app, "alice", "ledger#hold#")
            .await
            .iter()
            .map(|hold| {
                (
                    hold["chat_id"].as_s().unwrap().clone(),
                    hold["open_shard"].as_s().unwrap().clone(),
                )
            })
            .collect();
    let occupied: std::collections::BTreeSet<&String> = shard_of.values().collect();
    let later = Timestamp::now().plus(Duration::from_secs(5));
    // A run that may take 8 takes one from each shard that has any first,
    // not 8 from the first shard it reads.
    let first = app.store.expired_holds(later, 8).await.unwrap();
    assert_eq!(first.len(), 8);
    let served: std::collections::BTreeSet<&String> =
        first.iter().map(|hold| &shard_of[&hold.hold_id]).collect();
    assert_eq!(
        served.len(),
        occupied.len().min(8),
        "{served:?} of {occupied:?}"
    );

    let swept = sweeper::sweep(&app, later, Deadline::none()).await.unwrap();
    assert_eq!(
        (swept.charged_at_bound, swept.failed, swept.left),
        (24, 0, 0)
    );
    let again = sweeper::sweep(&app, later, Deadline::none()).await.unwrap();
    assert_eq!(again.closed(), 0);
    assert_eq!(stored_tokens(&app, "alice").await, Some(4000 - 2400));
    assert_ledger_balances(&app, "alice").await;
}
