//! The conflict-retry path, run for real: DynamoDB Local never reports a
//! `TransactionConflict`, so `api_tests::conflicts` answers chosen requests
//! with one, exactly as DynamoDB does when transactions collide, and the
//! counts below say how often the code tried, what it charged and what the
//! caller was told.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use api_tests::conflicts::{with_conflicts, Conflicts};
use api_tests::converse_stub::{Answer, ConverseStub};
use api_tests::*;
use chat_core::clock::Timestamp;
use chat_core::deadline::Deadline;
use chat_core::domain::ChatMessage;
use chat_core::store::retry::MAX_ATTEMPTS;
use chat_core::store::{ChatOutcome, ChatRecord};
use chat_core::{App, Config};
use chat_model::ModelConfig;
use devtools::dynamodb_local::{client, fresh_tables, quiet_app};
use lambda_http::{Context, RequestExt};

/// An app whose `operation` requests meet conflicts when armed.
async fn app_with_conflicts(operation: &'static str) -> (App, Conflicts) {
    let plain = client();
    let tables = fresh_tables(&plain).await;
    let (client, conflicts) = with_conflicts(&plain, operation);
    (quiet_app(Config::with_tables(tables), client), conflicts)
}

fn assert_unavailable(response: &lambda_http::Response<lambda_http::Body>) {
    assert_eq!(response.status(), 503);
    assert_eq!(json_of(response)["error"], "unavailable");
    assert_eq!(response.headers()["retry-after"], "1");
}

#[tokio::test]
async fn a_chat_that_meets_conflicts_is_retried_and_charged_once() {
    let (app, conflicts) = app_with_conflicts("TransactWriteItems").await;
    let token = signed_up(&app, "alice").await;
    conflicts.arm(3);
    let response = chat_as(&app, &token, "through the crowd").await;
    assert_eq!(response.status(), 200);
    assert_eq!(conflicts.sent(), 3);
    assert_eq!(stored_tokens(&app, "alice").await, Some(3900));
    assert_eq!(stored_chats(&app, "alice").await, 1);
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn endless_conflicts_end_in_a_503_with_retry_after_and_nothing_charged() {
    let (app, conflicts) = app_with_conflicts("TransactWriteItems").await;
    let token = signed_up(&app, "alice").await;
    conflicts.arm(usize::MAX);
    let response = chat_as(&app, &token, "never through").await;
    assert_unavailable(&response);
    assert_eq!(conflicts.sent(), MAX_ATTEMPTS as usize);
    assert_eq!(stored_tokens(&app, "alice").await, Some(4000));
    assert_eq!(stored_chats(&app, "alice").await, 0);
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_registration_that_meets_a_conflict_is_retried() {
    let (app, conflicts) = app_with_conflicts("TransactWriteItems").await;
    conflicts.arm(2);
    assert_eq!(register(&app, "alice").await.status(), 201);
    assert_eq!(conflicts.sent(), 2);
    assert_eq!(register(&app, "alice").await.status(), 409);
    assert_eq!(stored_tokens(&app, "alice").await, Some(4000));
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_hold_that_meets_endless_conflicts_gets_a_503_and_the_model_is_not_called() {
    let (mut app, conflicts) = app_with_conflicts("TransactWriteItems").await;
    let stub = ConverseStub::start(Answer::text("never asked"));
    app.models = chat_core::served::Models::only(
        Arc::new(stub.responder(ModelConfig::new("test-model"))),
        app.config.pricing,
    );
    let token = signed_up(&app, "alice").await;

    conflicts.arm(2);
    assert_eq!(chat_as(&app, &token, "soon").await.status(), 200);
    assert_eq!((conflicts.sent(), stub.call_count()), (2, 1));

    conflicts.arm(usize::MAX);
    let response = chat_as(&app, &token, "not now").await;
    assert_unavailable(&response);
    assert_eq!(stub.call_count(), 1, "the model is not paid for");
    assert_eq!(stored_tokens(&app, "alice").await, Some(3900));
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_settle_that_meets_conflicts_is_retried_and_charges_once() {
    let (mut app, conflicts) = app_with_conflicts("TransactWriteItems").await;
    // The model's answer arms the conflicts: they fall on the settle.
    let during_model = conflicts.clone();
    let stub = ConverseStub::scripted(move |_| {
        during_model.arm(3);
        Answer::text("settled at last")
    });
    app.models = chat_core::served::Models::only(
        Arc::new(stub.responder(ModelConfig::new("test-model"))),
        app.config.pricing,
    );
    let token = signed_up(&app, "alice").await;
    let response = chat_as(&app, &token, "hello").await;
    assert_eq!(response.status(), 200);
    assert_eq!((conflicts.sent(), stub.call_count()), (3, 1));
    assert_eq!(stored_tokens(&app, "alice").await, Some(3900));
    assert_eq!(stored_chats(&app, "alice").await, 1);
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn retries_stop_in_time_for_our_answer_before_the_lambda_deadline() {
    let (app, conflicts) = app_with_conflicts("TransactWriteItems").await;
    let token = signed_up(&app, "alice").await;
    conflicts.arm(usize::MAX);
    // Ten attempts take at least 2 s: far more than the deadline allows.
    conflicts.take(Duration::from_millis(200));
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let mut context = Context::default();
    context.deadline = now_ms + 1_000;
    let body = serde_json::json!({"message": "in time"}).to_string();
    let request = with_auth(with_body(event("chat"), &body), &token).with_lambda_context(context);
    let started = std::time::Instant::now();
    let response = chat::handle(&app, request).await.unwrap();
    assert_unavailable(&response);
    // The retries stopped for the deadline, not for running out: at most
    // the 750 ms before the answer's margin fit, at 200 ms an attempt.
    assert!(conflicts.sent() <= 4, "{} attempts", conflicts.sent());
    // Answered about a quarter second before the deadline; the bound
    // leaves room for this machine's own pauses, and is still far below
    // what the ten attempts would take.
    assert!(
        started.elapsed() < Duration::from_millis(1_500),
        "answered at {:?}",
        started.elapsed()
    );
    assert_eq!(stored_tokens(&app, "alice").await, Some(4000));
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_resent_chat_that_committed_is_saved_not_refused_for_the_balance_it_spent() {
    let app = devtools::dynamodb_local::fresh_app().await;
    let token = signed_up(&app, "alice").await;
    let token = app
        .auth
        .verify(chat_core::domain::AuthToken::parse(&token).unwrap())
        .await
        .unwrap();
    // The record a handler builds once and sends again on a retry: the
    // first send committed, but its answer was lost.
    let message = ChatMessage::parse("the last 100 tokens".into()).unwrap();
    let record = ChatRecord {
        chat_id: uuid::Uuid::now_v7(),
        model: "dummy",
        message: &message,
        response: "AI response",
        cost: 4000,
        usage: Default::default(),
        finish: chat_core::responder::Finish::Stop,
        created: Timestamp::now(),
    };
    let first = app
        .store
        .charge_and_save_chat(&token, &record, None, Deadline::none())
        .await
        .unwrap();
    assert_eq!(first, ChatOutcome::Saved);
    // Now both the charge (balance 0) and the save (id taken) refuse.
    let resent = app
        .store
        .charge_and_save_chat(&token, &record, None, Deadline::none())
        .await
        .unwrap();
    assert_eq!(
        resent,
        ChatOutcome::Saved,
        "charged and saved once, not 402"
    );
    assert_eq!(stored_tokens(&app, "alice").await, Some(0));
    assert_eq!(stored_chats(&app, "alice").await, 1);
    assert_ledger_balances(&app, "alice").await;
}
