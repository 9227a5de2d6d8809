//! API keys through their handler and the functions that take them, on
//! DynamoDB Local: made once and shown once, listed without the key,
//! working wherever a session token does at the same round trips, limited,
//! and stopped at once by revocation, logout, `chat-ops revoke` and
//! disabling, also under concurrent use. Every test ends with the ledger.

use std::sync::Arc;
use std::time::Duration;

use api_tests::calls::counted_app;
use api_tests::conflicts::{lost_attempts, patient_twin, twin_with_faults};
use api_tests::*;
use aws_sdk_dynamodb::types::AttributeValue;
use chat_core::clock::Timestamp;
use chat_core::store::MAX_API_KEYS;
use chat_core::App;
use lambda_http::http::Method;
use lambda_http::{Body, Request, Response};
use serde_json::{json, Value};

async fn keys(app: &App, request: Request) -> Response<Body> {
    keys::handle(app, request).await.unwrap()
}

fn create_request(token: &str, body: Value) -> Request {
    with_auth(with_body(event("keys"), &body.to_string()), token)
}

/// A new key named `name` for the session `token`: the key itself and its
/// id.
async fn new_key(app: &App, token: &str, name: &str) -> (String, String) {
    let response = keys(app, create_request(token, json!({ "name": name }))).await;
    assert_eq!(response.status(), 201, "{}", json_of(&response));
    let body = json_of(&response);
    (
        body["key"].as_str().unwrap().to_owned(),
        body["id"].as_str().unwrap().to_owned(),
    )
}

async fn listed(app: &App, token: &str) -> Vec<Value> {
    let response = keys(app, with_auth(event("keys-list"), token)).await;
    assert_eq!(response.status(), 200);
    json_of(&response)["keys"].as_array().unwrap().clone()
}

fn delete_request(token: &str, id: &str) -> Request {
    let mut request = with_auth(event("keys-delete-unknown"), token);
    *request.uri_mut() = format!("/keys/{id}").parse().unwrap();
    request
}

#[tokio::test]
async fn a_key_is_shown_once_listed_without_itself_chats_and_stops_when_revoked() {
    let app = fresh_app().await;
    let session = signed_up(&app, "alice").await;
    let response = keys(
        &app,
        create_request(&session, json!({"name": "ci", "expires_in_days": 30})),
    )
    .await;
    assert_eq!(response.status(), 201);
    let created = json_of(&response);
    let key = created["key"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(key.starts_with("sk-"));
    assert!(key.starts_with(created["prefix"].as_str().unwrap()));
    assert_eq!(created["name"], "ci");
    assert!(created["expires_at"].is_string());
    assert_eq!(created["last_used"], Value::Null);

    let list = listed(&app, &session).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["id"], id.as_str());
    assert!(
        list[0].get("key").is_none(),
        "a listed key never shows the key"
    );
    assert!(!list[0].to_string().contains(&key[key.len() - 20..]));
    assert_eq!(list[0]["last_used"], Value::Null);

    // A key works wherever a session token does, with either scheme.
    assert_eq!(
        chat_as(&app, &format!("Bearer {key}"), "hi").await.status(),
        200
    );
    assert_eq!(
        chat_as(&app, &format!("Token {key}"), "hi").await.status(),
        200
    );
    let balance = balance_as(&app, &key).await;
    assert_eq!(json_of(&balance)["tokens"], 3800);
    let list = listed(&app, &session).await;
    assert_eq!(list[0]["last_used"], Timestamp::now().day());

    let response = keys(&app, delete_request(&session, &id)).await;
    assert_eq!(response.status(), 204);
    assert_eq!(chat_as(&app, &key, "hi").await.status(), 401);
    assert_eq!(balance_as(&app, &key).await.status(), 401);
    assert!(listed(&app, &session).await.is_empty());
    let again = keys(&app, delete_request(&session, &id)).await;
    assert_eq!(again.status(), 404);
    assert_eq!(json_of(&again)["error"], "key_not_found");
    // The session itself is untouched.
    assert_eq!(chat_as(&app, &session, "hi").await.status(), 200);
    assert_eq!(stored_tokens(&app, "alice").await, Some(3700));
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_chat_with_a_key_is_the_same_one_round_trip_as_with_a_session() {
    let (app, calls) = counted_app().await;
    let session = signed_up(&app, "alice").await;
    let (key, _) = new_key(&app, &session, "ci").await;
    calls.take();
    assert_eq!(chat_as(&app, &key, "hi").await.status(), 200);
    assert_eq!(calls.take(), ["TransactWriteItems"]);
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_user_holds_at_most_ten_keys_and_only_a_session_manages_them() {
    let app = fresh_app().await;
    let session = signed_up(&app, "alice").await;
    let mut first = String::new();
    for i in 0..MAX_API_KEYS {
        let (key, _) = new_key(&app, &session, &format!("key {i}")).await;
        if i == 0 {
            first = key;
        }
    }
    let response = keys(&app, create_request(&session, json!({"name": "one more"}))).await;
    assert_eq!(response.status(), 409);
    assert_eq!(json_of(&response)["error"], "too_many_keys");
    assert_eq!(json_of(&response)["limit"], MAX_API_KEYS);
    assert_eq!(listed(&app, &session).await.len(), MAX_API_KEYS);

    // A key may not make, list or revoke keys: one that leaked could
    // otherwise make others its revocation would miss.
    for request in [
        create_request(&first, json!({"name": "sneaky"})),
        with_auth(event("keys-list"), &first),
        delete_request(&first, "AAAAAAAAAAAAAAAAAAAAAA"),
    ] {
        let response = keys(&app, request).await;
        assert_eq!(response.status(), 403);
        assert_eq!(json_of(&response)["error"], "session_required");
    }
    // Logins never push keys out, however many.
    for _ in 0..12 {
        logged_in(&app, "alice").await;
    }
    assert_eq!(chat_as(&app, &first, "still here").await.status(), 200);
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn bad_requests_and_strangers_change_nothing() {
    let app = fresh_app().await;
    let session = signed_up(&app, "alice").await;
    for (body, field) in [
        (json!({}), "name"),
        (json!({"name": ""}), "name"),
        (json!({"name": 7}), "name"),
        (json!({"name": "x".repeat(65)}), "name"),
        (
            json!({"name": "ci", "expires_in_days": 0}),
            "expires_in_days",
        ),
        (
            json!({"name": "ci", "expires_in_days": 3651}),
            "expires_in_days",
        ),
        (
            json!({"name": "ci", "expires_in_days": "30"}),
            "expires_in_days",
        ),
    ] {
        let response = keys(&app, create_request(&session, body.clone())).await;
        assert_eq!(response.status(), 400, "{body}");
        assert_eq!(json_of(&response)["field"], field, "{body}");
    }
    let response = keys(&app, create_request("Bearer nope", json!({"name": "ci"}))).await;
    assert_eq!(response.status(), 401);
    // An id not of the form ids have is malformed input; a well-formed one
    // that names no key of the caller's is 404.
    let response = keys(&app, delete_request(&session, "not-an-id")).await;
    assert_eq!(response.status(), 400);
    assert_eq!(json_of(&response)["field"], "id");
    let response = keys(&app, delete_request(&session, "AAAAAAAAAAAAAAAAAAAAAA")).await;
    assert_eq!(response.status(), 404);
    assert_eq!(json_of(&response)["error"], "key_not_found");
    let response = keys(&app, with_method(event("keys-list"), Method::PUT)).await;
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "POST, GET");
    // Bob cannot revoke Alice's key: it is not among his.
    let (_, id) = new_key(&app, &session, "ci").await;
    let bob = signed_up(&app, "bob").await;
    assert_eq!(keys(&app, delete_request(&bob, &id)).await.status(), 404);
    assert_eq!(listed(&app, &session).await.len(), 1);
    assert_ledger_balances(&app, "alice").await;
    assert_ledger_balances(&app, "bob").await;
}

#[tokio::test]
async fn a_key_logging_out_is_revoked() {
    let app = fresh_app().await;
    let session = signed_up(&app, "alice").await;
    let (key, _) = new_key(&app, &session, "ci").await;
    let response = logout::handle(&app, with_auth(event("logout"), &key))
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(chat_as(&app, &key, "hi").await.status(), 401);
    assert!(listed(&app, &session).await.is_empty());
    assert_ledger_balances(&app, "alice").await;
}

/// Takes `username`'s key map away: an account made before API keys.
async fn without_key_map(app: &App, username: &str) {
    app.store
        .client()
        .update_item()
        .table_name(&app.store.tables().users)
        .key("username", AttributeValue::S(username.into()))
        .update_expression("REMOVE api_keys")
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn a_keys_expiry_is_listed_as_made_and_a_key_without_one_never_expires() {
    let app = fresh_app().await;
    let session = signed_up(&app, "alice").await;
    let made = |body: Value| {
        let (app, session) = (&app, &session);
        async move {
            let response = keys(app, create_request(session, body)).await;
            assert_eq!(response.status(), 201, "{}", json_of(&response));
            json_of(&response)
        }
    };
    let in_30_days = || {
        Timestamp::now()
            .plus(Duration::from_secs(30 * 86_400))
            .day()
    };
    let earliest = in_30_days();
    let month = made(json!({"name": "month", "expires_in_days": 30})).await;
    let expiry = month["expires_at"].as_str().unwrap().to_owned();
    assert!(
        expiry.starts_with(&earliest) || expiry.starts_with(&in_30_days()),
        "{expiry}: not 30 days from now"
    );
    let forever = made(json!({"name": "forever"})).await;
    assert_eq!(forever["expires_at"], Value::Null);
    let list = listed(&app, &session).await;
    let expiry_of = |name: &str| {
        list.iter()
            .find(|key| key["name"] == name)
            .map(|key| key["expires_at"].clone())
    };
    assert_eq!(expiry_of("month"), Some(month["expires_at"].clone()));
    assert_eq!(expiry_of("forever"), Some(Value::Null));
    let key = forever["key"].as_str().unwrap();
    assert_eq!(chat_as(&app, key, "hi").await.status(), 200);
    assert_eq!(stored_tokens(&app, "alice").await, Some(3900));
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_account_from_before_keys_is_given_its_map_also_when_another_request_gave_it_first() {
    let app = Arc::new(fresh_app().await);
    let session = signed_up(&app, "alice").await;
    without_key_map(&app, "alice").await;
    let (key, _) = new_key(&app, &session, "first").await;
    assert_eq!(chat_as(&app, &key, "hi").await.status(), 200);

    // Bob's first request finds no map; its answer is held while a
    // second request gives the account its map (and makes its own key),
    // so the first one's map is refused as there already.
    let bob = signed_up(&app, "bob").await;
    without_key_map(&app, "bob").await;
    let (held, answers) = patient_twin(&app, "TransactWriteItems");
    let held = Arc::new(held);
    // Its token-signing keys read before the request whose answer is held.
    assert!(listed(&held, &bob).await.is_empty());
    answers.arm_held(0, 1);
    let first = {
        let (held, bob) = (held.clone(), bob.clone());
        tokio::spawn(
            async move { keys(&held, create_request(&bob, json!({"name": "held"}))).await },
        )
    };
    assert!(
        answers.wait_for(1, Duration::from_secs(60)).await,
        "the first request never reached the store"
    );
    let (quick, _) = new_key(&app, &bob, "quick").await;
    answers.let_go();
    let response = first.await.unwrap();
    assert_eq!(response.status(), 201, "{}", json_of(&response));
    let held_key = json_of(&response)["key"].as_str().unwrap().to_owned();
    let mut names: Vec<Value> = listed(&app, &bob)
        .await
        .iter()
        .map(|key| key["name"].clone())
        .collect();
    names.sort_by_key(Value::to_string);
    assert_eq!(names, [json!("held"), json!("quick")]);
    for key in [&quick, &held_key] {
        assert_eq!(chat_as(&app, key, "hi").await.status(), 200);
    }
    assert_eq!(stored_tokens(&app, "bob").await, Some(3800));
    assert_ledger_balances(&app, "alice").await;
    assert_ledger_balances(&app, "bob").await;
}

#[tokio::test]
async fn a_map_the_store_keeps_refusing_is_a_503_and_changes_nothing() {
    let app = fresh_app().await;
    let session = signed_up(&app, "alice").await;
    without_key_map(&app, "alice").await;
    let (throttled, faults) = twin_with_faults(&app, "UpdateItem");
    let (account, counts) = (stored_account(&app, "alice").await, item_counts(&app).await);
    faults.arm_throttled(lost_attempts());
    let response = keys(
        &throttled,
        create_request(&session, json!({"name": "late"})),
    )
    .await;
    assert_eq!(response.status(), 503, "{}", json_of(&response));
    assert_eq!(json_of(&response)["error"], "unavailable");
    assert_eq!(faults.sent(), lost_attempts());
    assert_eq!(stored_account(&app, "alice").await, account);
    assert_eq!(item_counts(&app).await, counts);
    // Sent again once the store answers, it makes the key.
    let (key, _) = new_key(&throttled, &session, "late").await;
    assert_eq!(chat_as(&app, &key, "hi").await.status(), 200);
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chat_ops_revoke_stops_every_key_at_once_under_concurrent_use() {
    let app = fresh_app().await;
    let revoker = sharing(&app);
    let user = chat_core::domain::Username::parse("alice").unwrap();
    stopped_under_load_on(&app, revoker.clone(), 401, move |app| {
        let user = user.clone();
        async move {
            app.store.end_all_sessions(&user).await.unwrap();
            assert_eq!(app.store.forget_keys(&user).await.unwrap(), 1);
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn disabling_stops_every_key_at_once_under_concurrent_use() {
    let app = fresh_app().await;
    let stopper = sharing(&app);
    let user = chat_core::domain::Username::parse("alice").unwrap();
    stopped_under_load_on(&app, stopper, 403, move |app| {
        let user = user.clone();
        async move {
            assert!(app.store.set_disabled(&user, true).await.unwrap());
        }
    })
    .await;
}

/// Thirty chats with a key of Alice's start at once, and `stop` runs with
/// `stopper` among them. Once it returns, nothing gets in; every chat was
/// either charged and saved or refused with `refused_with`, and the ledger
/// holds.
async fn stopped_under_load_on<F, Fut>(app: &App, stopper: Arc<App>, refused_with: u16, stop: F)
where
    F: FnOnce(Arc<App>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let shared = sharing(app);
    let session = signed_up(app, "alice").await;
    let (key, _) = new_key(app, &session, "ci").await;
    let tasks: Vec<_> = (0..30)
        .map(|i| {
            let (app, key) = (shared.clone(), key.clone());
            tokio::spawn(async move { chat_as(&app, &key, &format!("chat {i}")).await.status() })
        })
        .collect();
    stop(stopper).await;
    // Once stop has returned, nothing more gets in.
    for _ in 0..5 {
        assert_eq!(chat_as(app, &key, "after").await.status(), refused_with);
    }
    let mut ok = 0;
    for task in tasks {
        match task.await.unwrap().as_u16() {
            200 => ok += 1,
            status => assert_eq!(status, refused_with),
        }
    }
    assert_eq!(stored_chats(app, "alice").await, ok);
    assert_eq!(
        stored_tokens(app, "alice").await,
        Some(4000 - 100 * ok as i64)
    );
    assert_ledger_balances(app, "alice").await;
}
