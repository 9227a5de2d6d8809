//! The conflict-retry path, run for real: DynamoDB Local never reports a
//! `TransactionConflict`, so `api_tests::conflicts` answers chosen requests
//! with one, exactly as DynamoDB does when transactions collide, and the
//! counts below say how often the code tried, what it charged and what the
//! caller was told.

use chat_core::credits::Credits;
use std::sync::Arc;
use std::time::Duration;

use api_tests::conflicts::{lost_attempts, with_conflicts, Conflicts};
use api_tests::converse_stub::{Answer, ConverseStub};
use api_tests::*;
use aws_sdk_dynamodb::types::AttributeValue;
use chat_core::clock::Timestamp;
use chat_core::deadline::Deadline;
use chat_core::domain::ChatMessage;
use chat_core::store::retry::MAX_ATTEMPTS;
use chat_core::store::{ChatOutcome, ChatRecord, CHAT_ID, USERNAME};
use chat_core::{App, Config};
use chat_model::ModelConfig;
use devtools::dynamodb_local::{client, fresh_tables, quiet_app};
use lambda_http::RequestExt;

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
    // Ten attempts take at least 10 s: far more than the deadline allows.
    let attempt = Duration::from_secs(1);
    conflicts.take(attempt);
    let deadline_in = Duration::from_secs(4);
    let context = lambda_context_ending_in(deadline_in);
    let body = serde_json::json!({"message": "in time"}).to_string();
    let request = with_auth(with_body(event("chat"), &body), &token).with_lambda_context(context);
    let started = std::time::Instant::now();
    let response = chat::handle(&app, request).await.unwrap();
    let answered = started.elapsed();
    assert_unavailable(&response);
    // The retries stopped for the deadline, not for running out of
    // attempts: no more attempts than fit before it.
    let fit = (deadline_in.as_millis() / attempt.as_millis()) as usize;
    assert!(conflicts.sent() <= fit, "{} attempts", conflicts.sent());
    // Our answer came before Lambda's deadline: the one bound that matters.
    assert!(answered < deadline_in, "answered at {answered:?}");
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
        replay: None,
        tool_calls: &[],
        cost: Credits::new(4000),
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

// "Committed, but the answer was lost": the injector forwards the request,
// DynamoDB Local applies it, and the SDK is told 500. Each transaction is
// sent again, and its new item must tell its own commit apart from a
// refusal, whatever the other conditions now say.

/// A metered app on `app`'s tables: `stub` as its model (one attempt, so
/// calls count exactly), priced per token.
fn metered(mut app: App, stub: &ConverseStub, pricing: chat_core::pricing::Pricing) -> App {
    let mut model = ModelConfig::new("test-model");
    model.max_attempts = 1;
    app.config.pricing = pricing;
    app.models = chat_core::served::Models::only(Arc::new(stub.responder(model)), pricing);
    app
}

const PER_TOKEN: chat_core::pricing::Pricing =
    chat_core::pricing::Pricing::Usage(chat_core::pricing::UsagePrices::plain(1000, 2000));

fn state_of(
    item: &std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
) -> &str {
    item["state"].as_s().unwrap()
}

#[tokio::test]
async fn a_registration_whose_answer_was_lost_is_201_once() {
    let (app, conflicts) = app_with_conflicts("TransactWriteItems").await;
    conflicts.arm_lost_to_the_store(0);
    let response = register(&app, "alice").await;
    assert_eq!(response.status(), 201, "{:?}", json_of(&response));
    assert_eq!(conflicts.sent(), lost_attempts());
    assert_eq!(register(&app, "alice").await.status(), 409);
    assert_eq!(stored_tokens(&app, "alice").await, Some(4000));
    assert_eq!(
        ledger_entries(&app, "alice", "ledger#grant#").await.len(),
        1
    );
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_flat_chat_whose_answer_was_lost_is_charged_and_saved_once() {
    let (app, conflicts) = app_with_conflicts("TransactWriteItems").await;
    let token = signed_up(&app, "alice").await;
    conflicts.arm_lost_to_the_store(0);
    let response = chat_as(&app, &token, "lost and found").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["tokens-charged"], "100");
    assert_eq!(conflicts.sent(), lost_attempts());
    assert_eq!(stored_tokens(&app, "alice").await, Some(3900));
    assert_eq!(saved_messages(&app, "alice").await, ["lost and found"]);
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_hold_of_the_whole_balance_whose_answer_was_lost_is_held_once_not_refused() {
    let (app, conflicts) = app_with_conflicts("TransactWriteItems").await;
    let stub = ConverseStub::start(Answer::text("worth it all"));
    // The hold takes everything: resent, its account condition fails too,
    // and only the hold's own entry says the first send went through.
    let app = metered(app, &stub, chat_core::pricing::Pricing::Flat(4000));
    let token = signed_up(&app, "alice").await;
    conflicts.arm_lost_to_the_store(0);
    let response = chat_as(&app, &token, "everything").await;
    assert_eq!(response.status(), 200, "{:?}", json_of(&response));
    assert_eq!(response.headers()["tokens-charged"], "4000");
    assert_eq!((conflicts.sent(), stub.call_count()), (lost_attempts(), 1));
    assert_eq!(stored_tokens(&app, "alice").await, Some(0));
    let holds = ledger_entries(&app, "alice", "ledger#hold#").await;
    assert_eq!(holds.len(), 1);
    assert_eq!(state_of(&holds[0]), "settled");
    assert!(ledger_entries(&app, "alice", "ledger#release#")
        .await
        .is_empty());
    assert_eq!(stored_chats(&app, "alice").await, 1);
    let account = stored_account(&app, "alice").await;
    assert_eq!(account["open_calls"].as_n().unwrap(), "0");
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_settle_whose_answer_was_lost_is_charged_once_at_its_cost_not_the_hold() {
    let (app, conflicts) = app_with_conflicts("TransactWriteItems").await;
    let stub = ConverseStub::start(Answer::used("settled once", 100, 20));
    let app = metered(app, &stub, PER_TOKEN);
    let token = signed_up(&app, "alice").await;
    // The hold goes through; the settle commits and its answer is lost.
    // Resent, both its "hold still open" and "chat is new" conditions
    // fail: the chat's says it was this settle that closed the hold.
    conflicts.arm_lost_to_the_store(1);
    let response = chat_as(&app, &token, "settle me").await;
    assert_eq!(response.status(), 200);
    // 100 x 1000 + 20 x 2000 thousandths, not the whole hold.
    assert_eq!(response.headers()["tokens-charged"], "140");
    assert_eq!((conflicts.sent(), stub.call_count()), (lost_attempts(), 1));
    assert_eq!(stored_tokens(&app, "alice").await, Some(4000 - 140));
    let holds = ledger_entries(&app, "alice", "ledger#hold#").await;
    assert_eq!(state_of(&holds[0]), "settled");
    assert_eq!(saved_messages(&app, "alice").await, ["settle me"]);
    assert_ledger_balances(&app, "alice").await;
}

/// Takes a hold of `amount` for `alice` (signed up on `app`) straight
/// through the store, expiring at once.
async fn held(app: &App, token: &str, amount: u64) -> chat_core::store::Hold {
    let token = app
        .auth
        .verify(chat_core::domain::AuthToken::parse(token).unwrap())
        .await
        .unwrap();
    let now = Timestamp::now();
    let message = chat_core::domain::ChatMessage::parse("held".into()).unwrap();
    let request = chat_core::store::HoldRequest {
        amount: Credits::new(amount),
        message: &message,
        model: "test-model",
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
        chat_core::store::HoldOutcome::Held(hold) => hold,
        other => panic!("not held: {other:?}"),
    }
}

#[tokio::test]
async fn a_release_whose_answer_was_lost_gives_the_hold_back_once() {
    let (app, conflicts) = app_with_conflicts("TransactWriteItems").await;
    let token = signed_up(&app, "alice").await;
    let hold = held(&app, &token, 300).await;
    assert_eq!(stored_tokens(&app, "alice").await, Some(3700));
    conflicts.arm_lost_to_the_store(0);
    let reason = chat_core::store::ReleaseReason::ModelRefused;
    let released = app.store.release(&hold, reason, Deadline::none()).await;
    assert!(released.unwrap(), "this release is what closed the hold");
    assert_eq!(conflicts.sent(), lost_attempts());
    let again = app.store.release(&hold, reason, Deadline::none()).await;
    assert!(!again.unwrap(), "a second release gives nothing back");
    assert_eq!(stored_tokens(&app, "alice").await, Some(4000));
    assert_eq!(
        ledger_entries(&app, "alice", "ledger#release#").await.len(),
        1
    );
    let holds = ledger_entries(&app, "alice", "ledger#hold#").await;
    assert_eq!(state_of(&holds[0]), "released");
    let account = stored_account(&app, "alice").await;
    assert_eq!(account["open_calls"].as_n().unwrap(), "0");
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_release_after_a_refused_model_whose_answer_was_lost_charges_nothing() {
    let (app, conflicts) = app_with_conflicts("TransactWriteItems").await;
    let stub = ConverseStub::start(Answer::error(429, "ThrottlingException"));
    let app = metered(app, &stub, PER_TOKEN);
    let token = signed_up(&app, "alice").await;
    // The hold goes through; the model refuses; the release commits and
    // its answer is lost.
    conflicts.arm_lost_to_the_store(1);
    let response = chat_as(&app, &token, "not now").await;
    assert_eq!(response.status(), 503);
    assert!(response
        .headers()
        .get("tokens-charged")
        .is_none_or(|v| v == "0"));
    assert_eq!((conflicts.sent(), stub.call_count()), (lost_attempts(), 1));
    assert_eq!(stored_tokens(&app, "alice").await, Some(4000));
    assert_eq!(
        ledger_entries(&app, "alice", "ledger#release#").await.len(),
        1
    );
    assert_eq!(stored_chats(&app, "alice").await, 0);
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_sweep_whose_answer_was_lost_charges_the_hold_once() {
    let (app, conflicts) = app_with_conflicts("TransactWriteItems").await;
    let token = signed_up(&app, "alice").await;
    held(&app, &token, 300).await;
    conflicts.arm_lost_to_the_store(0);
    let later = Timestamp::now().plus(Duration::from_secs(2));
    let swept = sweeper::sweep(&app, later, Deadline::none()).await.unwrap();
    assert_eq!(
        (swept.charged_at_bound, swept.closed_meanwhile, swept.failed),
        (1, 0, 0)
    );
    assert_eq!(conflicts.sent(), lost_attempts());
    let again = sweeper::sweep(&app, later, Deadline::none()).await.unwrap();
    assert_eq!(again, sweeper::Swept::default());
    assert_eq!(stored_tokens(&app, "alice").await, Some(3700));
    let holds = ledger_entries(&app, "alice", "ledger#hold#").await;
    assert_eq!(state_of(&holds[0]), "settled");
    // The charge saved as its chat, once.
    assert_eq!(saved_messages(&app, "alice").await, ["held"]);
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_hold_whose_every_answer_was_lost_is_given_back_before_any_model_call() {
    let (app, conflicts) = app_with_conflicts("TransactWriteItems").await;
    let stub = ConverseStub::start(Answer::text("never asked"));
    let app = metered(app, &stub, PER_TOKEN);
    let token = signed_up(&app, "alice").await;
    // The hold commits on its first send, and every answer to every send
    // of it is lost: the store gives up not knowing whether it committed,
    // and the hold is released at once in case it did (it did), before
    // any model is called.
    let sends = MAX_ATTEMPTS as usize * lost_attempts();
    conflicts.arm_lost(0, sends);
    let response = chat_as(&app, &token, "in doubt").await;
    assert_eq!(response.status(), 503, "{:?}", json_of(&response));
    assert_eq!((conflicts.sent(), stub.call_count()), (sends, 0));
    assert_eq!(stored_tokens(&app, "alice").await, Some(4000));
    let holds = ledger_entries(&app, "alice", "ledger#hold#").await;
    assert_eq!(holds.len(), 1);
    assert_eq!(state_of(&holds[0]), "released");
    let releases = ledger_entries(&app, "alice", "ledger#release#").await;
    assert_eq!(releases.len(), 1);
    assert_eq!(releases[0]["reason"].as_s().unwrap(), "hold_unconfirmed");
    assert_eq!(stored_chats(&app, "alice").await, 0);
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn holds_taken_before_calls_were_counted_or_messages_kept_are_swept_as_taken() {
    let (app, _conflicts) = app_with_conflicts("TransactWriteItems").await;
    let token = signed_up(&app, "alice").await;
    let refused = held(&app, &token, 300).await;
    let abandoned = held(&app, &token, 200).await;
    // As an earlier release wrote them: not counted among the account's
    // open calls, and the abandoned one without its message.
    for (hold, remove) in [(&refused, "counted"), (&abandoned, "counted, message")] {
        app.store
            .client()
            .update_item()
            .table_name(&app.store.tables().chats)
            .key(USERNAME, AttributeValue::S("alice".into()))
            .key(CHAT_ID, AttributeValue::S(hold.hold_id.clone()))
            .update_expression(format!("REMOVE {remove}"))
            .send()
            .await
            .unwrap();
    }
    set_open_calls(&app, "alice", 0).await;
    assert!(app.store.mark_refused(&refused).await.unwrap());

    let later = Timestamp::now().plus(Duration::from_secs(1));
    let swept = sweeper::sweep(&app, later, Deadline::none()).await.unwrap();
    assert_eq!((swept.released, swept.charged_at_bound), (1, 1));
    assert_eq!(swept.closed(), 2);
    // The refused one given back whole, the abandoned one charged whole,
    // and no open call counted out of the account for either.
    assert_eq!(stored_tokens(&app, "alice").await, Some(4000 - 200));
    let account = stored_account(&app, "alice").await;
    assert_eq!(account["open_calls"].as_n().unwrap(), "0");
    let releases = ledger_entries(&app, "alice", "ledger#release#").await;
    assert_eq!(releases.len(), 1);
    assert_eq!(releases[0]["reason"].as_s().unwrap(), "model_refused");
    assert_eq!(releases[0]["amount"].as_n().unwrap(), "300");
    let settles = ledger_entries(&app, "alice", "ledger#settle#").await;
    assert_eq!(settles.len(), 1);
    assert_eq!(settles[0]["reason"].as_s().unwrap(), "abandoned");
    assert_eq!(stored_chats(&app, "alice").await, 0);
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_sweep_whose_close_never_commits_reports_it_failed_and_the_next_run_closes_it() {
    let (app, conflicts) = app_with_conflicts("TransactWriteItems").await;
    let token = signed_up(&app, "alice").await;
    held(&app, &token, 300).await;
    conflicts.arm(usize::MAX);
    let later = Timestamp::now().plus(Duration::from_secs(1));
    let swept = sweeper::sweep(&app, later, Deadline::none()).await.unwrap();
    let failed = sweeper::Swept {
        failed: 1,
        ..sweeper::Swept::default()
    };
    assert_eq!(swept, failed);
    assert_eq!(stored_tokens(&app, "alice").await, Some(3700));
    let holds = ledger_entries(&app, "alice", "ledger#hold#").await;
    assert_eq!(state_of(&holds[0]), "open");

    conflicts.arm(0);
    let swept = sweeper::sweep(&app, later, Deadline::none()).await.unwrap();
    let charged = sweeper::Swept {
        charged_at_bound: 1,
        ..sweeper::Swept::default()
    };
    assert_eq!(swept, charged);
    assert_eq!(stored_tokens(&app, "alice").await, Some(3700));
    let holds = ledger_entries(&app, "alice", "ledger#hold#").await;
    assert_eq!(state_of(&holds[0]), "settled");
    assert_ledger_balances(&app, "alice").await;
}
