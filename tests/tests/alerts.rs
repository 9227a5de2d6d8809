//! Alerts on DynamoDB Local, from the users table's real stream: exactly
//! one event per crossing whatever the concurrency (20 chats across a
//! balance threshold, a key's budget at 80 % and 100 %), a grant back over
//! the threshold re-arming it, and the threshold set and read back through
//! `/balance/` (bad input refused, changing nothing). Each record runs
//! through the alerts function's own handler, as Lambda would hand it the
//! batch. Every test that moves tokens ends with the ledger.

use std::sync::Arc;

use api_tests::eventbridge::eventbridge;
use api_tests::*;
use chat_core::alerts::{alerts_of, Alert, Crossing};
use chat_core::deadline::Deadline;
use chat_core::domain::Username;
use chat_core::pricing::Pricing;
use chat_core::responder::DummyResponder;
use chat_core::{App, Config};
use devtools::dynamodb_local::{client, endpoint, fresh_tables, quiet_app};
use devtools::streams::StreamReader;
use lambda_http::http::Method;
use lambda_http::{Body, Response};
use serde_json::{json, Value};

/// An app whose flat chat costs `cost`, on tables of its own, and a reader
/// of its users table's stream.
async fn app_costing(cost: u32) -> (Arc<App>, StreamReader) {
    let client = client();
    let tables = fresh_tables(&client).await;
    let mut config = Config::with_tables(tables);
    config.pricing = Pricing::Flat(cost);
    let mut app = quiet_app(config, client);
    app.models = chat_core::served::Models::only(Arc::new(DummyResponder), app.config.pricing);
    let reader = StreamReader::open(endpoint(), app.store.client(), &app.config.tables.users)
        .await
        .unwrap();
    (Arc::new(app), reader)
}

/// The alerts of every record written since the last call, as the alerts
/// function computes them from a Lambda batch of those records; each is
/// published through the function's own publisher, to a stand-in of
/// EventBridge, exactly once and in order.
async fn new_alerts(reader: &mut StreamReader) -> Vec<Alert> {
    let records = reader.read_new().await.unwrap();
    let from_batch = alerts::alerts_of_batch(batch_of(&records)).unwrap();
    // The same as the decision record by record: the batch adds nothing.
    let one_by_one: Vec<Alert> = records.iter().flat_map(|r| alerts_of(r).unwrap()).collect();
    assert_eq!(from_batch, one_by_one);
    let (client, sent) = eventbridge();
    let answer = alerts::handle(
        &alerts::EventBridge::new(client, "alerts"),
        batch_of(&records),
    )
    .await
    .unwrap();
    assert_eq!(answer["published"], from_batch.len());
    let published: Vec<Value> = sent
        .entries()
        .iter()
        .map(|e| serde_json::from_str(e["Detail"].as_str().unwrap()).unwrap())
        .collect();
    let details: Vec<Value> = from_batch.iter().map(Alert::detail).collect();
    assert_eq!(published, details);
    from_batch
}

/// Records as Lambda hands them to the function.
fn batch_of(records: &[chat_core::alerts::StreamRecord]) -> Value {
    json!({"Records": records.iter().map(|r| json!({
        "eventName": if r.old.is_some() && r.new.is_some() { "MODIFY" } else { "INSERT" },
        "dynamodb": {"SequenceNumber": r.sequence, "OldImage": r.old, "NewImage": r.new},
    })).collect::<Vec<_>>()})
}

fn balance_alerts(alerts: &[Alert]) -> Vec<i64> {
    alerts
        .iter()
        .filter_map(|a| match a.crossing {
            Crossing::BalanceBelow { balance, .. } => Some(balance),
            _ => None,
        })
        .collect()
}

async fn patch_balance(app: &App, token: &str, body: &str) -> Response<Body> {
    let request = with_method(
        with_auth(with_body(event("balance"), body), token),
        Method::PATCH,
    );
    balance::handle(app, request).await.unwrap()
}

#[tokio::test]
async fn twenty_chats_across_the_threshold_alert_exactly_once_and_a_grant_re_arms_it() {
    let (app, mut reader) = app_costing(100).await;
    let session = signed_up(&app, "alice").await;
    // 4000 to start; an alert below 2500.
    let set = patch_balance(&app, &session, r#"{"alert_below": 2500}"#).await;
    assert_eq!(set.status(), 200, "{}", json_of(&set));
    assert_eq!(json_of(&set), json!({"tokens": 4000, "alert_below": 2500}));
    assert!(new_alerts(&mut reader).await.is_empty());

    // 20 at once: 4000 -> 2000, through 2500 once.
    let responses = simultaneous_chats(&app, &session, 20).await;
    assert!(responses.iter().all(|r| r.status() == 200));
    let alerts = new_alerts(&mut reader).await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(balance_alerts(&alerts), [2400]);
    assert_eq!(alerts[0].detail()["threshold"], 2500);

    // Further down, already below: nothing.
    assert_eq!(chat_as(&app, &session, "more").await.status(), 200);
    assert!(new_alerts(&mut reader).await.is_empty());

    // A grant back over the threshold, then the fall again: a second one.
    let alice = Username::parse("alice").unwrap();
    app.store
        .grant(&alice, 1000, "top-up", "op-alerts-1", Deadline::none())
        .await
        .unwrap();
    assert_eq!(stored_tokens(&app, "alice").await, Some(2900));
    assert!(new_alerts(&mut reader).await.is_empty());
    let responses = simultaneous_chats(&app, &session, 10).await;
    assert!(responses.iter().all(|r| r.status() == 200));
    let again = new_alerts(&mut reader).await;
    assert_eq!(balance_alerts(&again), [2400]);
    // Another crossing, another identity.
    assert_ne!(again[0].id(), alerts[0].id());
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_key_budget_of_250_alerts_once_at_80_and_once_at_100_percent() {
    let (app, mut reader) = app_costing(50).await;
    let session = signed_up(&app, "alice").await;
    let created = keys::handle(
        &app,
        with_auth(
            with_body(
                event("keys"),
                r#"{"name": "service", "budget": {"tokens": 250, "period": "day"}}"#,
            ),
            &session,
        ),
    )
    .await
    .unwrap();
    assert_eq!(created.status(), 201);
    let created = json_of(&created);
    let key = created["key"].as_str().unwrap();
    let id = created["id"].as_str().unwrap();

    // 20 at 50 each on 250: five answered, the budget spent to the last.
    let responses = simultaneous_chats(&app, key, 20).await;
    assert_eq!(responses.iter().filter(|r| r.status() == 200).count(), 5);
    let alerts = new_alerts(&mut reader).await;
    let marks: Vec<(String, u8, i64)> = alerts
        .iter()
        .map(|a| match &a.crossing {
            Crossing::KeyBudget {
                key, mark, spent, ..
            } => (key.clone(), *mark, *spent),
            other => panic!("not a key's alert: {other:?}"),
        })
        .collect();
    assert_eq!(
        marks,
        [(id.to_owned(), 80, 200), (id.to_owned(), 100, 250)],
        "{alerts:?}"
    );
    assert_eq!(alerts[1].detail()["percent"], 100);
    // Refused chats write nothing, so nothing more comes.
    assert_eq!(chat_as(&app, key, "over").await.status(), 402);
    assert!(new_alerts(&mut reader).await.is_empty());
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn the_threshold_is_set_read_back_cleared_and_bad_input_changes_nothing() {
    let (app, mut reader) = app_costing(100).await;
    let session = signed_up(&app, "alice").await;
    let read =
        |app: Arc<App>, token: String| async move { json_of(&balance_as(&app, &token).await) };
    assert_eq!(
        read(app.clone(), session.clone()).await,
        json!({"tokens": 4000})
    );
    assert_eq!(
        patch_balance(&app, &session, r#"{"alert_below": 500.0}"#)
            .await
            .status(),
        200
    );
    assert_eq!(read(app.clone(), session.clone()).await["alert_below"], 500);

    for bad in [
        r#"{"alert_below": -1}"#,
        r#"{"alert_below": 1.5}"#,
        r#"{"alert_below": "500"}"#,
        r#"{"alert_below": 1000000000001}"#,
        r#"{}"#,
        r#"[]"#,
    ] {
        let refused = patch_balance(&app, &session, bad).await;
        assert_eq!(refused.status(), 400, "{bad}");
        let code = json_of(&refused)["error"].clone();
        assert!(
            code == "invalid_field" || code == "invalid_json",
            "{bad}: {code}"
        );
        assert_eq!(
            read(app.clone(), session.clone()).await["alert_below"],
            500,
            "{bad}"
        );
    }
    // Without a live session: 401, nothing set.
    let anonymous = patch_balance(&app, "not-a-token", r#"{"alert_below": 1}"#).await;
    assert_eq!(anonymous.status(), 401);

    // The operator's way sets it too, and `null` clears it.
    let alice = Username::parse("alice").unwrap();
    assert!(app.store.set_alert_below(&alice, Some(700)).await.unwrap());
    assert_eq!(read(app.clone(), session.clone()).await["alert_below"], 700);
    let cleared = patch_balance(&app, &session, r#"{"alert_below": null}"#).await;
    assert_eq!(json_of(&cleared), json!({"tokens": 4000}));
    // Cleared, the balance reads as an account that never set one.
    assert_eq!(
        read(app.clone(), session.clone()).await,
        json!({"tokens": 4000})
    );
    let nobody = Username::parse("nobody").unwrap();
    assert!(!app.store.set_alert_below(&nobody, Some(1)).await.unwrap());
    // Setting and clearing moved no tokens and crossed nothing.
    assert!(new_alerts(&mut reader).await.is_empty());
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn the_publisher_sends_ten_a_call_and_fails_the_batch_on_a_refused_entry() {
    let (app, mut reader) = app_costing(10).await;
    let session = signed_up(&app, "alice").await;
    // 25 records that each cross: the threshold is set above the balance
    // before each chat (by the operator), and the chat takes it below.
    let alice = Username::parse("alice").unwrap();
    for i in 0..25 {
        let balance = stored_tokens(&app, "alice").await.unwrap() as u64;
        assert!(app
            .store
            .set_alert_below(&alice, Some(balance))
            .await
            .unwrap());
        assert_eq!(
            chat_as(&app, &session, &format!("m{i}")).await.status(),
            200
        );
    }
    let records = reader.read_new().await.unwrap();
    let batch = batch_of(&records);
    let (client, sent) = eventbridge();
    let publisher = alerts::EventBridge::new(client, "alerts");
    alerts::handle(&publisher, batch.clone()).await.unwrap();
    let sizes: Vec<usize> = sent
        .calls()
        .iter()
        .map(|(_, body)| body["Entries"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, [10, 10, 5]);
    let first: Vec<Value> = sent.entries();

    // One entry refused: the invocation fails, so Lambda sends the batch
    // again; the retry publishes every event again with the same ids.
    sent.refuse_one_entry(true);
    assert!(alerts::handle(&publisher, batch.clone()).await.is_err());
    sent.refuse_one_entry(false);
    let before = sent.entries().len();
    alerts::handle(&publisher, batch).await.unwrap();
    let retried: Vec<Value> = sent.entries()[before..].to_vec();
    assert_eq!(retried, first, "the same events, the same ids");
    assert_ledger_balances(&app, "alice").await;
}
