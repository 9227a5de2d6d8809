//! `GET /usage/` on DynamoDB Local: grouped by day, model and key, paged,
//! as JSON and CSV, and exact: its totals are the ledger's movements, and
//! over all time the balance. Every test ends with the ledger.

use std::sync::Arc;

use api_tests::converse_stub::{Answer, ConverseStub};
use api_tests::*;
use chat_core::clock::Timestamp;
use chat_core::deadline::Deadline;
use chat_core::domain::Username;
use chat_core::pricing::{Pricing, UsagePrices};
use chat_core::store::UsageGroup;
use chat_core::App;
use chat_model::ModelConfig;
use devtools::dynamodb_local::fresh_app;
use lambda_http::{Body, Request, Response};
use serde_json::{json, Value};

/// `GET /usage/?<query>` with `token`, parsed from a payload as API
/// Gateway sends it.
fn usage_request(query: &str, token: Option<&str>) -> Request {
    let mut request = chats_request(query, token);
    *request.uri_mut() = format!("/usage/?{query}").parse().unwrap();
    request
}

async fn usage(app: &App, query: &str, token: &str) -> Response<Body> {
    usage::handle(app, usage_request(query, Some(token)))
        .await
        .unwrap()
}

async fn usage_json(app: &App, query: &str, token: &str) -> Value {
    let response = usage(app, query, token).await;
    assert_eq!(response.status(), 200, "{}", json_of(&response));
    json_of(&response)
}

/// A key made by `session`: the key and its id.
async fn new_key(app: &App, session: &str) -> (String, String) {
    let body = json!({"name": "service"}).to_string();
    let response = keys::handle(app, with_auth(with_body(event("keys"), &body), session))
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let created = json_of(&response);
    (
        created["key"].as_str().unwrap().to_owned(),
        created["id"].as_str().unwrap().to_owned(),
    )
}

fn sum(rows: &Value, field: &str) -> i64 {
    rows.as_array()
        .unwrap()
        .iter()
        .map(|row| row[field].as_i64().unwrap())
        .sum()
}

#[tokio::test]
async fn usage_by_day_model_and_key_adds_up_to_the_ledger_and_the_balance() {
    let app = Arc::new(fresh_app().await);
    let session = signed_up(&app, "alice").await;
    let (key, key_id) = new_key(&app, &session).await;
    assert_eq!(chat_as(&app, &session, "one").await.status(), 200);
    assert_eq!(chat_as(&app, &session, "two").await.status(), 200);
    assert_eq!(chat_as(&app, &key, "three").await.status(), 200);
    let alice = Username::parse("alice").unwrap();
    app.store
        .grant(&alice, 50, "thanks", "op-usage-1", Deadline::none())
        .await
        .unwrap();
    let balance = stored_tokens(&app, "alice").await.unwrap();

    for group in ["day", "model", "key"] {
        let body = usage_json(&app, &format!("group_by={group}"), &session).await;
        assert_eq!(body["group_by"], group);
        let rows = &body["rows"];
        // Over all time, the groups' net is the balance, and the totals
        // are the rows' sums.
        assert_eq!(sum(rows, "net"), balance, "{body}");
        assert_eq!(body["total"]["net"], balance);
        assert_eq!(body["total"]["charged"], 300);
        assert_eq!(body["total"]["charged"], sum(rows, "charged"));
        assert_eq!(body["total"]["granted"], sum(rows, "granted"));
        assert_eq!(body["total"]["entries"], sum(rows, "entries"));
        assert_eq!(body["next_cursor"], Value::Null);
    }
    let by_day = usage_json(&app, "group_by=day", &session).await;
    assert_eq!(by_day["rows"].as_array().unwrap().len(), 1);
    assert_eq!(by_day["rows"][0]["group"], Timestamp::now().day());

    let by_key = usage_json(&app, "group_by=key", &session).await;
    let rows = by_key["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    // Grants and session chats name no key: the null group, first.
    assert_eq!(rows[0]["group"], Value::Null);
    assert_eq!(rows[0]["charged"], 200);
    assert_eq!(rows[1]["group"], key_id.as_str());
    assert_eq!(rows[1]["charged"], 100);
    assert_eq!(rows[1]["granted"], 0);

    let by_model = usage_json(&app, "group_by=model", &session).await;
    let dummy = by_model["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["group"] == "dummy")
        .unwrap()
        .clone();
    assert_eq!(dummy["charged"], 300);
    // The key reads its owner's usage too.
    assert_eq!(
        usage_json(&app, "group_by=key", &key).await["total"],
        by_key["total"]
    );

    // The store's answer, as `chat-ops usage` reads it, is the same.
    let direct = app
        .store
        .usage_of(
            &alice,
            Timestamp::from_unix_seconds(0).unwrap(),
            Timestamp::now().plus(std::time::Duration::from_secs(1)),
            UsageGroup::Day,
        )
        .await
        .unwrap();
    assert_eq!(direct.total.net(), balance);
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_window_counts_only_what_is_dated_in_it() {
    let app = Arc::new(fresh_app().await);
    let session = signed_up(&app, "alice").await;
    assert_eq!(chat_as(&app, &session, "one").await.status(), 200);
    let day = |days: u64| {
        Timestamp::now()
            .plus(std::time::Duration::from_secs(86_400 * days))
            .day()
    };
    let later = usage_json(&app, &format!("from={}&to={}", day(1), day(2)), &session).await;
    assert_eq!(later["rows"], json!([]));
    assert_eq!(later["total"]["entries"], 0);
    let past = usage_json(&app, "from=2000-01-01&to=2000-01-02T00:00:00Z", &session).await;
    assert_eq!(past["total"]["net"], 0);
    assert_eq!(past["from"], "2000-01-01T00:00:00.000Z");
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn pages_and_csv_show_every_group_once() {
    let app = Arc::new(fresh_app().await);
    let session = signed_up(&app, "alice").await;
    let mut keys = Vec::new();
    for _ in 0..3 {
        let (key, _) = new_key(&app, &session).await;
        assert_eq!(chat_as(&app, &key, "hi").await.status(), 200);
        keys.push(key);
    }
    // Four groups (three keys and the registration's grant), two a page.
    let first = usage_json(&app, "group_by=key&limit=2", &session).await;
    assert_eq!(first["rows"].as_array().unwrap().len(), 2);
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let second = usage_json(
        &app,
        &format!("group_by=key&limit=2&cursor={cursor}"),
        &session,
    )
    .await;
    assert_eq!(second["rows"].as_array().unwrap().len(), 2);
    assert_eq!(second["next_cursor"], Value::Null);
    let mut groups: Vec<Value> = first["rows"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["rows"].as_array().unwrap())
        .map(|row| row["group"].clone())
        .collect();
    groups.dedup();
    assert_eq!(groups.len(), 4);
    assert_eq!(
        sum(&first["rows"], "net") + sum(&second["rows"], "net"),
        stored_tokens(&app, "alice").await.unwrap()
    );

    let mut request = usage_request("group_by=key&limit=3", Some(&session));
    request
        .headers_mut()
        .insert("accept", "text/csv".parse().unwrap());
    let csv = usage::handle(&app, request).await.unwrap();
    assert_eq!(csv.status(), 200);
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    assert!(csv.headers().contains_key("next-cursor"));
    let text = String::from_utf8(csv.body().to_vec()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "group,charged,granted,net,entries");
    assert_eq!(lines.len(), 4);
    assert!(lines[2].ends_with(",100,0,-100,1"), "{text}");
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn bad_queries_are_400_and_a_missing_token_401() {
    let app = fresh_app().await;
    let session = signed_up(&app, "alice").await;
    for (query, field) in [
        ("group_by=week", "group_by"),
        ("from=yesterday", "from"),
        ("from=2026-02-30", "from"),
        ("from=2026-12-02&to=2026-12-01", "from"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=1&limit=2", "limit"),
        ("cursor=", "cursor"),
    ] {
        let response = usage(&app, query, &session).await;
        assert_eq!(response.status(), 400, "{query}");
        assert_eq!(json_of(&response)["error"], "invalid_field");
        assert_eq!(json_of(&response)["field"], field, "{query}");
    }
    let anonymous = usage::handle(&app, usage_request("", None)).await.unwrap();
    assert_eq!(anonymous.status(), 401);
}

#[tokio::test]
async fn a_metered_chat_with_a_key_counts_its_hold_and_settle_under_the_key() {
    let stub = ConverseStub::start(Answer::used("Bonjour", 10, 20));
    let mut app = fresh_app().await;
    app.config.pricing = Pricing::Usage(UsagePrices::plain(1000, 1000));
    app.config.initial_tokens = 100_000;
    let mut model = ModelConfig::new("test-model");
    model.max_attempts = 1;
    app.models =
        chat_core::served::Models::only(Arc::new(stub.responder(model)), app.config.pricing);
    let session = signed_up(&app, "alice").await;
    let (key, key_id) = new_key(&app, &session).await;
    let response = chat_as(&app, &key, "Hello").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["tokens-charged"], "30");
    let by_key = usage_json(&app, "group_by=key", &session).await;
    let row = by_key["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["group"] == key_id.as_str())
        .unwrap()
        .clone();
    // The hold and its settle: two entries, 30 charged net.
    assert_eq!(row["charged"], 30);
    assert_eq!(row["entries"], 2);
    let by_model = usage_json(&app, "group_by=model", &session).await;
    assert!(by_model["rows"]
        .as_array()
        .unwrap()
        .iter()
        .any(|row| row["group"] == "test-model" && row["charged"] == 30));
    assert_ledger_balances(&app, "alice").await;
}
