//! API keys with budgets and model lists, on DynamoDB Local: exact under
//! concurrency, refused in each route's shape with when the budget resets,
//! a new period started by the chat that finds the old one ended, holds
//! counted and given back against the key, and `PATCH /keys/{id}`. Every
//! test ends with the ledger.

use chat_core::credits::Credits;
use std::sync::Arc;

use api_tests::completion::complete;
use api_tests::conflicts::{lost_attempts, patient_twin, twin_with_faults};
use api_tests::converse_stub::{Answer, ConverseStub};
use api_tests::*;
use aws_sdk_dynamodb::types::AttributeValue;
use chat_core::domain::{current_windows, Period};
use chat_core::pricing::{Pricing, UsagePrices};
use chat_core::responder::DUMMY_MODEL;
use chat_core::store::USERNAME;
use chat_core::App;
use chat_model::ModelConfig;
use devtools::dynamodb_local::fresh_app;
use lambda_http::http::Method;
use lambda_http::{Body, Request, Response};
use serde_json::{json, Value};

async fn keys(app: &App, request: Request) -> Response<Body> {
    keys::handle(app, request).await.unwrap()
}

/// A key made by `session` with `limits` merged into its body: the key
/// and its id.
async fn key_with(app: &App, session: &str, limits: Value) -> (String, String) {
    let mut body = json!({"name": "service"});
    body.as_object_mut()
        .unwrap()
        .extend(limits.as_object().unwrap().clone());
    let response = keys(
        app,
        with_auth(with_body(event("keys"), &body.to_string()), session),
    )
    .await;
    assert_eq!(response.status(), 201, "{}", json_of(&response));
    let created = json_of(&response);
    (
        created["key"].as_str().unwrap().to_owned(),
        created["id"].as_str().unwrap().to_owned(),
    )
}

async fn listed(app: &App, session: &str) -> Vec<Value> {
    let response = keys(app, with_auth(event("keys-list"), session)).await;
    assert_eq!(response.status(), 200);
    json_of(&response)["keys"].as_array().unwrap().clone()
}

fn patch_request(session: &str, id: &str, body: &str) -> Request {
    let mut request = with_method(
        with_auth(with_body(event("keys"), body), session),
        Method::PATCH,
    );
    *request.uri_mut() = format!("/keys/{id}").parse().unwrap();
    request
}

#[tokio::test]
async fn twenty_simultaneous_chats_on_a_budget_of_250_at_100_each_answer_exactly_two() {
    let app = Arc::new(fresh_app().await);
    let session = signed_up(&app, "alice").await;
    let before = stored_tokens(&app, "alice").await.unwrap();
    let (key, _) = key_with(
        &app,
        &session,
        json!({"budget": {"tokens": 250, "period": "day"}}),
    )
    .await;

    let responses = simultaneous_chats(&app, &key, 20).await;
    let answered = responses.iter().filter(|r| r.status() == 200).count();
    assert_eq!(answered, 2);
    for refused in responses.iter().filter(|r| r.status() != 200) {
        assert_eq!(refused.status(), 402);
        let body = json_of(refused);
        assert_eq!(body["error"], "key_budget_exceeded");
        assert_eq!(body["budget"], 250);
        assert_eq!(body["period"], "day");
        assert_eq!(body["left"], 50);
        let resets = Period::Day
            .resets_at(chat_core::clock::Timestamp::now())
            .unwrap()
            .iso8601();
        assert_eq!(body["resets_at"], resets.as_str());
        assert_eq!(refused.headers()["x-budget-resets-at"], resets.as_str());
    }
    // The balance paid for two chats only: the key, not the balance, ran out.
    assert_eq!(stored_tokens(&app, "alice").await.unwrap(), before - 200);
    assert_eq!(stored_chats(&app, "alice").await, 2);

    let list = listed(&app, &session).await;
    assert_eq!(list[0]["budget"], json!({"tokens": 250, "period": "day"}));
    assert_eq!(list[0]["spent"], 200);
    assert_eq!(list[0]["models"], Value::Null);
    assert!(list[0]["resets_at"].is_string());
    // The session itself is not limited by its keys' budgets.
    assert_eq!(chat_as(&app, &session, "still mine").await.status(), 200);
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn the_openai_route_refuses_an_exhausted_key_in_its_own_shape() {
    let app = Arc::new(fresh_app().await);
    let (_, key, _) = alice_with_a_budget(&app, 100, "total").await;
    let body = json!({"model": DUMMY_MODEL, "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(complete(&app, &key, body.clone()).await.status, 200);
    let refused = complete(&app, &key, body).await;
    assert_eq!(refused.status, 429);
    let error = &refused.json()["error"];
    assert_eq!(error["type"], "insufficient_quota");
    assert_eq!(error["code"], "key_budget_exceeded");
    // A total budget never starts over.
    assert_eq!(error["resets_at"], Value::Null);
    assert_eq!(refused.header("x-should-retry"), Some("false"));
    assert_eq!(refused.header("x-budget-resets-at"), None);
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_key_limited_to_other_models_is_refused_and_changes_nothing() {
    let app = Arc::new(fresh_app().await);
    let session = signed_up(&app, "alice").await;
    let (key, id) = key_with(&app, &session, json!({"models": ["haiku"]})).await;
    let counts = item_counts(&app).await;
    let refused = chat_as(&app, &key, "hello").await;
    assert_eq!(refused.status(), 403);
    assert_eq!(json_of(&refused)["error"], "model_not_allowed");
    assert_eq!(json_of(&refused)["model"], DUMMY_MODEL);
    let body = json!({"model": DUMMY_MODEL, "messages": [{"role": "user", "content": "hi"}]});
    let v1 = complete(&app, &key, body).await;
    assert_eq!(v1.status, 403);
    assert_eq!(v1.json()["error"]["code"], "model_not_allowed");
    assert_eq!(v1.json()["error"]["param"], "model");
    assert_eq!(item_counts(&app).await, counts);

    // Allowed once the list names it.
    let patched = keys(
        &app,
        patch_request(
            &session,
            &id,
            &json!({"models": ["haiku", DUMMY_MODEL]}).to_string(),
        ),
    )
    .await;
    assert_eq!(patched.status(), 200, "{}", json_of(&patched));
    assert_eq!(json_of(&patched)["models"], json!(["haiku", DUMMY_MODEL]));
    assert_eq!(chat_as(&app, &key, "hello").await.status(), 200);
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_patch_changes_the_budget_keeping_the_periods_spend_and_bad_input_changes_nothing() {
    let app = Arc::new(fresh_app().await);
    let (session, key, id) = alice_with_a_budget(&app, 150, "month").await;
    assert_eq!(chat_as(&app, &key, "one").await.status(), 200);
    assert_eq!(chat_as(&app, &key, "two").await.status(), 402);

    let counts = item_counts(&app).await;
    for bad in [
        json!({"budget": {"tokens": -1, "period": "day"}}).to_string(),
        json!({"budget": {"tokens": 10, "period": "year"}}).to_string(),
        json!({"models": []}).to_string(),
        json!({"models": "haiku"}).to_string(),
        "{not json".to_owned(),
    ] {
        let response = keys(&app, patch_request(&session, &id, &bad)).await;
        assert_eq!(response.status(), 400, "{bad}");
        assert!(json_of(&response)["error"].is_string());
    }
    let unknown = keys(
        &app,
        patch_request(&session, "AAAAAAAAAAAAAAAAAAAAAA", "{}"),
    )
    .await;
    assert_eq!(unknown.status(), 404);
    assert_eq!(json_of(&unknown)["error"], "key_not_found");
    // Only a session changes a key.
    let by_key = keys(&app, patch_request(&key, &id, "{}")).await;
    assert_eq!(by_key.status(), 403);
    assert_eq!(item_counts(&app).await, counts);

    // The same period keeps its 100 spent: 250 leaves room for one more.
    let raised = keys(
        &app,
        patch_request(
            &session,
            &id,
            &json!({"budget": {"tokens": 250, "period": "month"}}).to_string(),
        ),
    )
    .await;
    assert_eq!(raised.status(), 200);
    assert_eq!(json_of(&raised)["spent"], 100);
    assert_eq!(chat_as(&app, &key, "two").await.status(), 200);
    assert_eq!(chat_as(&app, &key, "three").await.status(), 402);

    // No budget: up to the balance, the spend still shown.
    let lifted = keys(&app, patch_request(&session, &id, r#"{"budget": null}"#)).await;
    assert_eq!(json_of(&lifted)["budget"], Value::Null);
    assert_eq!(json_of(&lifted)["spent"], 200);
    assert_eq!(chat_as(&app, &key, "three").await.status(), 200);
    assert_eq!(listed(&app, &session).await[0]["spent"], 300);
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_patch_that_meets_a_chat_between_its_read_and_its_write_reads_again_and_keeps_the_spend()
{
    let app = fresh_app().await;
    let (session, key, id) = alice_with_a_budget(&app, 300, "month").await;
    let (patching, reads) = patient_twin(&app, "GetItem");
    let patching = Arc::new(patching);
    // Its token-signing keys read before the read that is held.
    assert_eq!(listed(&patching, &session).await.len(), 1);
    reads.arm_held(0, 1);
    let patch = {
        let (patching, session, id) = (patching.clone(), session.clone(), id.clone());
        let body = json!({"budget": {"tokens": 500, "period": "month"}}).to_string();
        tokio::spawn(async move { keys(&patching, patch_request(&session, &id, &body)).await })
    };
    assert!(
        reads.wait_for(1, std::time::Duration::from_secs(60)).await,
        "the PATCH never read the key"
    );
    // The key spends after the PATCH read it and before it writes.
    assert_eq!(chat_as(&app, &key, "meanwhile").await.status(), 200);
    reads.let_go();
    let patched = patch.await.unwrap();
    assert_eq!(patched.status(), 200, "{}", json_of(&patched));
    assert_eq!(json_of(&patched)["spent"], 100);
    assert_eq!(json_of(&patched)["budget"]["tokens"], 500);
    // 500 with 100 of it spent: four more chats, not five.
    assert_chats_left(&app, &key, 4).await;
    assert_eq!(listed(&app, &session).await[0]["spent"], 500);
    assert_eq!(stored_tokens(&app, "alice").await, Some(3500));
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_patch_the_store_keeps_refusing_is_a_503_and_changes_nothing() {
    let app = fresh_app().await;
    let (session, key, id) = alice_with_a_budget(&app, 300, "month").await;
    assert_eq!(chat_as(&app, &key, "one").await.status(), 200);
    let (throttled, faults) = twin_with_faults(&app, "UpdateItem");
    let account = stored_account(&app, "alice").await;
    faults.arm_throttled(lost_attempts());
    let body = json!({"budget": {"tokens": 500, "period": "month"}}).to_string();
    let response = keys(&throttled, patch_request(&session, &id, &body)).await;
    assert_eq!(response.status(), 503, "{}", json_of(&response));
    assert_eq!(json_of(&response)["error"], "unavailable");
    assert_eq!(faults.sent(), lost_attempts());
    assert_eq!(stored_account(&app, "alice").await, account);
    // Still 300 a month with 100 spent: two more chats.
    assert_chats_left(&app, &key, 2).await;
    assert_ledger_balances(&app, "alice").await;
}

/// `key`'s retry of its chat `k-1`: replayed, in one transaction (no
/// reshaping write before it).
async fn replayed_in_one_transaction(
    app: &App,
    calls: &api_tests::calls::CallLog,
    key: &str,
) -> Response<Body> {
    calls.take();
    let again = keyed_chat_as(app, key, "k-1", "Hello").await;
    assert_eq!(again.status(), 200, "{}", json_of(&again));
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let transactions = calls
        .take()
        .iter()
        .filter(|op| *op == "TransactWriteItems")
        .count();
    assert_eq!(transactions, 1);
    again
}

/// Alice, signed up, with a key of `tokens` a `period`: her session, the
/// key and its id.
async fn alice_with_a_budget(app: &App, tokens: u64, period: &str) -> (String, String, String) {
    let session = signed_up(app, "alice").await;
    let budget = json!({"budget": {"tokens": tokens, "period": period}});
    let (key, id) = key_with(app, &session, budget).await;
    (session, key, id)
}

/// `key` makes exactly `count` more chats, and the next is refused for its
/// budget.
async fn assert_chats_left(app: &App, key: &str, count: usize) {
    for i in 0..count {
        assert_eq!(chat_as(app, key, &format!("more {i}")).await.status(), 200);
    }
    let refused = chat_as(app, key, "one too many").await;
    assert_eq!(refused.status(), 402);
    assert_eq!(json_of(&refused)["error"], "key_budget_exceeded");
}

/// Puts key `id`'s window back to a day long gone, with nothing left in
/// it: what a key looks like the first time it is used in a new period.
async fn age_window(app: &App, username: &str, id: &str) {
    app.store
        .client()
        .update_item()
        .table_name(&app.store.tables().users)
        .key(USERNAME, AttributeValue::S(username.into()))
        .update_expression("SET api_keys.#kid[2] = :none, api_keys.#kid[3] = :old")
        .expression_attribute_names("#kid", id)
        .expression_attribute_values(":none", AttributeValue::N("0".into()))
        .expression_attribute_values(":old", AttributeValue::S("d2000-01-01".into()))
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn a_new_period_starts_by_itself_once_and_exactly_under_concurrency() {
    let app = Arc::new(fresh_app().await);
    let (session, key, id) = alice_with_a_budget(&app, 250, "day").await;
    age_window(&app, "alice", &id).await;
    assert_eq!(listed(&app, &session).await[0]["spent"], 0);

    // Every chat finds the old window; one renews it, the rest count in it.
    let responses = simultaneous_chats(&app, &key, 10).await;
    let answered = responses.iter().filter(|r| r.status() == 200).count();
    assert_eq!(
        answered,
        2,
        "{:?}",
        responses.iter().map(json_of).collect::<Vec<_>>()
    );
    for refused in responses.iter().filter(|r| r.status() != 200) {
        assert_eq!(json_of(refused)["error"], "key_budget_exceeded");
    }
    let account = stored_account(&app, "alice").await;
    let entry = account["api_keys"].as_m().unwrap()[&id]
        .as_l()
        .unwrap()
        .clone();
    assert_eq!(entry[2].as_n().unwrap(), "50");
    assert_eq!(
        entry[3].as_s().unwrap(),
        &current_windows(chat_core::clock::Timestamp::now())[0]
    );
    assert_ledger_balances(&app, "alice").await;
}

/// A paid model behind the stub, priced per token.
async fn metered_app(stub: &ConverseStub) -> App {
    metered(fresh_app().await, stub)
}

/// `app` with the stub's paid model behind it, priced per token.
fn metered(mut app: App, stub: &ConverseStub) -> App {
    app.config.pricing = Pricing::Usage(UsagePrices::plain(1000, 1000));
    app.config.initial_tokens = 100_000;
    let mut model = ModelConfig::new("test-model");
    model.max_attempts = 1;
    app.models =
        chat_core::served::Models::only(Arc::new(stub.responder(model)), app.config.pricing);
    app
}

#[tokio::test]
async fn a_hold_counts_against_the_key_and_its_settle_gives_back_the_unused_part() {
    // 10 in and 20 out at one token each: 30 charged, far less than held.
    let stub = ConverseStub::start(Answer::used("Bonjour", 10, 20));
    let app = metered_app(&stub).await;
    let (session, key, _) = alice_with_a_budget(&app, 100_000, "week").await;
    let response = chat_as(&app, &key, "Hello").await;
    assert_eq!(response.status(), 200, "{}", json_of(&response));
    assert_eq!(response.headers()["tokens-charged"], "30");
    assert_eq!(listed(&app, &session).await[0]["spent"], 30);

    // A model that refuses gives the whole hold back to the key too.
    let refusing = ConverseStub::start(Answer::error(400, "ValidationException"));
    let mut app = app;
    let mut model = ModelConfig::new("test-model");
    model.max_attempts = 1;
    app.models =
        chat_core::served::Models::only(Arc::new(refusing.responder(model)), app.config.pricing);
    assert_ne!(chat_as(&app, &key, "Hello").await.status(), 200);
    assert_eq!(listed(&app, &session).await[0]["spent"], 30);
    assert_ledger_balances(&app, "alice").await;
}

/// Key `id`'s `left` and window as stored.
async fn key_state(app: &App, id: &str) -> (String, String) {
    let account = stored_account(app, "alice").await;
    let entry = account["api_keys"].as_m().unwrap()[id]
        .as_l()
        .unwrap()
        .clone();
    (
        entry[2].as_n().unwrap().to_owned(),
        entry[3].as_s().unwrap().to_owned(),
    )
}

/// A new key of the user of `session` with `budget`, verified as a caller
/// is: its token and its id.
async fn verified_key(
    app: &App,
    session: &str,
    budget: Value,
) -> (chat_core::domain::VerifiedToken, String) {
    let (key, id) = key_with(app, session, json!({ "budget": budget })).await;
    let token = chat_core::domain::AuthToken::parse(&key).unwrap();
    (app.auth.verify(token).await.unwrap(), id)
}

/// A hold of `amount` on `model` taken by `caller` (priced flat), due
/// `ttl` from now.
async fn take_hold(
    app: &App,
    caller: &chat_core::domain::VerifiedToken,
    amount: u64,
    model: &str,
    ttl: std::time::Duration,
) -> chat_core::store::Hold {
    use chat_core::store::{HoldOutcome, HoldRequest};
    let message = chat_core::domain::ChatMessage::parse("hello".into()).unwrap();
    let now = chat_core::clock::Timestamp::now();
    let request = HoldRequest {
        amount: Credits::new(amount),
        message: &message,
        model,
        pricing: Pricing::Flat(100),
        key: None,
        taken: now,
        expires: now.plus(ttl),
    };
    let deadline = chat_core::deadline::Deadline::none();
    match app
        .store
        .take_hold(caller, &request, deadline)
        .await
        .unwrap()
    {
        HoldOutcome::Held(hold) => hold,
        other => panic!("a hold: {other:?}"),
    }
}

#[tokio::test]
async fn a_hold_closed_after_its_window_ended_leaves_the_new_windows_spend_alone() {
    use chat_core::deadline::Deadline;
    use chat_core::store::ReleaseReason;

    let app = fresh_app().await;
    let session = signed_up(&app, "alice").await;
    let (verified, id) =
        verified_key(&app, &session, json!({"tokens": 1000, "period": "day"})).await;
    let ten_minutes = std::time::Duration::from_secs(600);
    let today = Period::Day.window(chat_core::clock::Timestamp::now());

    // Released in its own window: the key gets it all back.
    let first = take_hold(&app, &verified, 300, DUMMY_MODEL, ten_minutes).await;
    assert_eq!(key_state(&app, &id).await, ("700".into(), today.clone()));
    assert!(app
        .store
        .release(&first, ReleaseReason::ModelRefused, Deadline::none())
        .await
        .unwrap());
    assert_eq!(key_state(&app, &id).await, ("1000".into(), today.clone()));

    // Taken, then the key moves on to another window (as at midnight, by
    // a chat that renewed it) with 40 spent there: the release gives the
    // balance back, and the new window keeps its own spend.
    let second = take_hold(&app, &verified, 300, DUMMY_MODEL, ten_minutes).await;
    app.store
        .client()
        .update_item()
        .table_name(&app.store.tables().users)
        .key(USERNAME, AttributeValue::S("alice".into()))
        .update_expression("SET api_keys.#kid[2] = :left, api_keys.#kid[3] = :next")
        .expression_attribute_names("#kid", id.as_str())
        .expression_attribute_values(":left", AttributeValue::N("960".into()))
        .expression_attribute_values(":next", AttributeValue::S("d2999-01-01".into()))
        .send()
        .await
        .unwrap();
    assert!(app
        .store
        .release(&second, ReleaseReason::ModelRefused, Deadline::none())
        .await
        .unwrap());
    assert_eq!(
        key_state(&app, &id).await,
        ("960".into(), "d2999-01-01".into())
    );
    // And a key revoked while its hold was open: the hold still closes.
    let (third_verified, third_id) =
        verified_key(&app, &session, json!({"tokens": 500, "period": "week"})).await;
    let third = take_hold(&app, &third_verified, 200, DUMMY_MODEL, ten_minutes).await;
    let revoke = keys(&app, {
        let mut request = with_method(with_auth(event("keys-list"), &session), Method::DELETE);
        *request.uri_mut() = format!("/keys/{third_id}").parse().unwrap();
        request
    })
    .await;
    assert_eq!(revoke.status(), 204);
    assert!(app
        .store
        .release(&third, ReleaseReason::ModelRefused, Deadline::none())
        .await
        .unwrap());
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_paid_chat_that_finds_its_keys_period_over_starts_the_next_with_or_without_an_idempotency_key(
) {
    // 10 in and 20 out at one token each: 30 charged.
    let stub = ConverseStub::start(Answer::used("Bonjour", 10, 20));
    let (app, calls) = api_tests::calls::counted_app().await;
    let app = metered(app, &stub);
    let (_, key, id) = alice_with_a_budget(&app, 100_000, "day").await;
    let today = Period::Day.window(chat_core::clock::Timestamp::now());
    let renewed = || ((100_000 - 30).to_string(), today.clone());

    // The hold's account update is sent again in the new period's shape.
    age_window(&app, "alice", &id).await;
    let response = chat_as(&app, &key, "Hello").await;
    assert_eq!(response.status(), 200, "{}", json_of(&response));
    assert_eq!(key_state(&app, &id).await, renewed());

    // So it is with an Idempotency-Key, whose marker did not refuse it.
    age_window(&app, "alice", &id).await;
    let response = keyed_chat_as(&app, &key, "k-1", "Hello").await;
    assert_eq!(response.status(), 200, "{}", json_of(&response));
    assert_eq!(key_state(&app, &id).await, renewed());

    // A retry under that key is replayed from its marker, even though the
    // key's period has ended again: in one transaction, not reshaped first.
    age_window(&app, "alice", &id).await;
    let again = replayed_in_one_transaction(&app, &calls, &key).await;
    assert_eq!(json_of(&again)["response"], "Bonjour");
    assert_eq!(
        key_state(&app, &id).await,
        ("0".into(), "d2000-01-01".into())
    );
    assert_eq!(stub.call_count(), 2);
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_refused_keyed_hold_the_sweeper_gives_back_returns_to_the_key_and_names_its_model_and_key(
) {
    use chat_core::deadline::Deadline;

    let app = fresh_app().await;
    let session = signed_up(&app, "alice").await;
    let (verified, id) =
        verified_key(&app, &session, json!({"tokens": 1000, "period": "day"})).await;
    let now = chat_core::clock::Timestamp::now();
    // Due at once: the sweep below finds it expired.
    let hold = take_hold(
        &app,
        &verified,
        300,
        "test-model",
        std::time::Duration::ZERO,
    )
    .await;
    let today = Period::Day.window(now);
    assert_eq!(key_state(&app, &id).await, ("700".into(), today.clone()));

    // The model refused and the release could not commit: the hold is
    // marked for the sweeper, which reads the key and model off the item.
    assert!(app.store.mark_refused(&hold).await.unwrap());
    let later = chat_core::clock::Timestamp::now().plus(std::time::Duration::from_secs(1));
    let swept = sweeper::sweep(&app, later, Deadline::none()).await.unwrap();
    assert_eq!((swept.released, swept.closed()), (1, 1));
    assert_eq!(key_state(&app, &id).await, ("1000".into(), today));
    assert_eq!(stored_tokens(&app, "alice").await, Some(4000));
    // Usage groups the release under the hold's model and key.
    let releases = ledger_entries(&app, "alice", "ledger#release#").await;
    assert_eq!(releases.len(), 1);
    assert_eq!(releases[0]["model"].as_s().unwrap(), "test-model");
    assert_eq!(releases[0]["key_id"].as_s().unwrap(), &id);
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_flat_chat_names_its_key_and_a_retry_after_the_period_ended_is_replayed_in_one_transaction(
) {
    let (app, calls) = api_tests::calls::counted_app().await;
    let (session, key, id) = alice_with_a_budget(&app, 1000, "day").await;
    let first = keyed_chat_as(&app, &key, "k-1", "Hello").await;
    assert_eq!(first.status(), 200, "{}", json_of(&first));
    let by_session = chat_as(&app, &session, "Hi").await;
    assert_eq!(by_session.status(), 200, "{}", json_of(&by_session));
    // The key's chat is saved under its key (usage groups by it); the
    // session's under none.
    let chats = saved_chat_items(&app, "alice").await;
    let keys: Vec<Option<String>> = chats
        .iter()
        .map(|chat| chat.get("key_id").map(|v| v.as_s().unwrap().clone()))
        .collect();
    assert_eq!(keys, [Some(id.clone()), None]);

    // A retry under the same Idempotency-Key once the key's period has
    // ended is replayed from its marker in one transaction: the account's
    // refusal is not reshaped first.
    age_window(&app, "alice", &id).await;
    replayed_in_one_transaction(&app, &calls, &key).await;
    assert_eq!(stored_tokens(&app, "alice").await, Some(4000 - 200));
    assert_ledger_balances(&app, "alice").await;
}
