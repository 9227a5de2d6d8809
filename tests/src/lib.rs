//! Helpers shared by the cross-function tests: requests from `events/`,
//! handler calls, and direct reads of the tables to check what was stored.

pub mod calls;
pub mod completion;
pub mod conflicts;
pub mod converse_stub;
pub mod eventbridge;
pub mod hostile;
pub mod http;
pub mod local_api;
pub mod openapi;
pub mod ops;
pub mod runtime_api;

use std::path::PathBuf;
use std::sync::Arc;

use aws_sdk_dynamodb::types::{AttributeValue, Select};
use chat_core::clock::Timestamp;
use chat_core::deadline::Deadline;
use chat_core::domain::{AuthToken, SigningKey};
use chat_core::domain::{LoginName, Source};
use chat_core::store::MARKER_PREFIX;
use chat_core::store::USERNAME;
use chat_core::store::{LoginFailures, FREE_FAILURES};
use chat_core::App;
use lambda_http::http::{HeaderValue, Method};
use lambda_http::{Body, Request, Response};
use serde_json::Value;

pub use devtools::dynamodb_local::fresh_app;

pub const PASSWORD: &str = "correct-horse-battery";

/// The token every authenticated sample event carries (`alice`'s).
pub const EVENTS_TOKEN: &str =
    "YWxpY2U.AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8AAAAA9IZXAAFlOZpcJC9qBypkgpoLlCEu";

pub fn events_dir() -> PathBuf {
    devtools::dynamodb_local::repo_root().join("events")
}

/// The sample event `events/<name>.json` as the request a function gets.
pub fn event(name: &str) -> Request {
    let path = events_dir().join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    lambda_http::request::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The sample event `events/<name>.json` as if API Gateway had seen it
/// come from `ip` (`requestContext.http.sourceIp`).
pub fn event_from(name: &str, ip: &str) -> Request {
    let path = events_dir().join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut payload: Value = serde_json::from_str(&text).unwrap();
    payload["requestContext"]["http"]["sourceIp"] = ip.into();
    lambda_http::request::from_str(&payload.to_string()).unwrap()
}

/// A login of `username` with `password`, sent from `ip`.
pub async fn login_from(app: &App, ip: &str, username: &str, password: &str) -> Response<Body> {
    login::handle(
        app,
        with_body(event_from("login", ip), &credentials(username, password)),
    )
    .await
    .unwrap()
}

/// Records `count` wrong passwords for `username` (an account's or not),
/// the last at `last` (which must be in the past), as logins take their
/// slots: through the store, at moments spaced by the waits the earlier
/// ones imposed.
pub async fn past_failures(app: &App, username: &str, count: u32, last: Timestamp) {
    let name = LoginName::parse(username);
    let mut moments = vec![last.unix_millis()];
    for done in (1..count).rev() {
        // The failure before the last `count - done` came this long before.
        let before = LoginFailures {
            count: done,
            last_ms: 0,
        };
        let gap = before.wait(0).map_or(0, |seconds| seconds as i64 * 1000);
        moments.push(moments.last().unwrap() - gap);
    }
    for at in moments.into_iter().rev() {
        app.store
            .begin_login(
                &name,
                &Source::unknown(),
                Timestamp::from_unix_millis(at).unwrap(),
                Deadline::none(),
            )
            .await
            .expect("a slot free at that moment");
    }
}

/// Makes logins with `username` (an account's or not) wait most of a
/// minute from now, as eleven wrong passwords in a row would.
pub async fn slow_down(app: &App, username: &str) {
    let now = Timestamp::now().unix_millis();
    let last = Timestamp::from_unix_millis(now - 2000).unwrap();
    past_failures(app, username, FREE_FAILURES + 6, last).await;
}

/// A request shaped like `events/<name>.json` with another body.
pub fn with_body(mut request: Request, body: &str) -> Request {
    *request.body_mut() = Body::Text(body.to_owned());
    request
}

/// A request shaped like `events/<name>.json` with another Authorization.
pub fn with_auth(mut request: Request, value: &str) -> Request {
    match HeaderValue::from_str(value) {
        Ok(value) => {
            request.headers_mut().insert("authorization", value);
        }
        Err(_) => panic!("not a header value: {value:?}"),
    }
    request
}

pub fn with_method(mut request: Request, method: Method) -> Request {
    *request.method_mut() = method;
    request
}

pub fn json_of(response: &Response<Body>) -> Value {
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap()),
        Some("application/json"),
        "every response is JSON"
    );
    serde_json::from_slice(response.body().as_ref()).expect("the body is JSON")
}

pub fn credentials(username: &str, password: &str) -> String {
    serde_json::json!({"username": username, "password": password}).to_string()
}

pub async fn register(app: &App, username: &str) -> Response<Body> {
    register::handle(
        app,
        with_body(event("register"), &credentials(username, PASSWORD)),
    )
    .await
    .unwrap()
}

/// The signing key [`EVENTS_TOKEN`] was made with (key id 1, the bytes
/// 32..64): a fixed key for fixed sample events, never a deployed one.
pub fn events_signing_key() -> SigningKey {
    let secret: Vec<u8> = (32..64).collect();
    SigningKey::from_parts(1, &secret).expect("32 bytes")
}

/// Makes the token the sample events carry a live session of `alice`'s:
/// stores the events' signing key (on tables that have none yet) and the
/// session, as login would. `alice` must be registered.
pub async fn start_events_session(app: &App) -> Result<(), chat_core::ApiError> {
    let keys = app.store.create_signing_key(events_signing_key()).await?;
    assert_eq!(
        keys.current(),
        &events_signing_key(),
        "these tables had a signing key of their own already"
    );
    let token = app
        .auth
        .verify(AuthToken::parse(EVENTS_TOKEN).expect("the events' token is well formed"))
        .await?;
    app.store
        .create_session(&token, chat_core::clock::Timestamp::now(), Deadline::none())
        .await
}

/// Registers and logs in `username`; returns the token.
pub async fn signed_up(app: &App, username: &str) -> String {
    assert_eq!(register(app, username).await.status(), 201);
    logged_in(app, username).await
}

/// A login of `username` (registered already) with the sample password;
/// returns the new token.
pub async fn logged_in(app: &App, username: &str) -> String {
    let response = login_with(app, username, PASSWORD).await;
    assert_eq!(response.status(), 200);
    json_of(&response)["token"].as_str().unwrap().to_owned()
}

pub async fn login_with(app: &App, username: &str, password: &str) -> Response<Body> {
    login::handle(
        app,
        with_body(event("login"), &credentials(username, password)),
    )
    .await
    .unwrap()
}

/// `GET /chats/?<query>` with `token`, parsed from a payload as API Gateway
/// sends it, so the handler reads the parameters as it does in AWS.
pub fn chats_request(query: &str, token: Option<&str>) -> Request {
    let text = std::fs::read_to_string(events_dir().join("history.json")).unwrap();
    let mut payload: Value = serde_json::from_str(&text).unwrap();
    payload["rawQueryString"] = query.into();
    payload
        .as_object_mut()
        .unwrap()
        .remove("queryStringParameters");
    let mut request = lambda_http::request::from_str(&payload.to_string()).unwrap();
    match token {
        Some(token) => with_auth(request, token),
        None => {
            request.headers_mut().remove("authorization");
            request
        }
    }
}

/// `count` chats sent by `token` at once; their answers.
pub async fn simultaneous_chats(app: &Arc<App>, token: &str, count: usize) -> Vec<Response<Body>> {
    let tasks: Vec<_> = (0..count)
        .map(|i| {
            let (app, token) = (app.clone(), token.to_owned());
            tokio::spawn(async move { chat_as(&app, &token, &format!("message {i}")).await })
        })
        .collect();
    let mut responses = Vec::new();
    for task in tasks {
        responses.push(task.await.unwrap());
    }
    responses
}

pub async fn chat_as(app: &App, token: &str, message: &str) -> Response<Body> {
    let body = serde_json::json!({ "message": message }).to_string();
    chat::handle(app, with_auth(with_body(event("chat"), &body), token))
        .await
        .unwrap()
}

/// A chat sent with an `Idempotency-Key`.
pub async fn keyed_chat_as(app: &App, token: &str, key: &str, message: &str) -> Response<Body> {
    let body = serde_json::json!({ "message": message }).to_string();
    let mut request = with_auth(with_body(event("chat"), &body), token);
    let key = HeaderValue::from_str(key).unwrap_or_else(|_| panic!("not a header value: {key:?}"));
    request.headers_mut().insert("idempotency-key", key);
    chat::handle(app, request).await.unwrap()
}

pub async fn balance_as(app: &App, token: &str) -> Response<Body> {
    balance::handle(app, with_auth(event("balance"), token))
        .await
        .unwrap()
}

/// The balance as stored, read directly.
pub async fn stored_tokens(app: &App, username: &str) -> Option<i64> {
    let item = app
        .store
        .client()
        .get_item()
        .table_name(&app.store.tables().users)
        .key(USERNAME, AttributeValue::S(username.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap_or_default();
    item.get("tokens")
        .map(|v| v.as_n().unwrap().parse().unwrap())
}

/// The messages of the chats saved for `username`, read directly
/// (idempotency markers, which sort after every chat id, left out).
pub async fn saved_messages(app: &App, username: &str) -> Vec<String> {
    saved_chat_items(app, username)
        .await
        .iter()
        .map(|item| item["message"].as_s().unwrap().clone())
        .collect()
}

/// The chat items saved for `username`, oldest first, as stored.
pub async fn saved_chat_items(
    app: &App,
    username: &str,
) -> Vec<std::collections::HashMap<String, AttributeValue>> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let page = app
            .store
            .client()
            .query()
            .table_name(&app.store.tables().chats)
            .key_condition_expression("username = :u AND chat_id < :markers")
            .expression_attribute_values(":u", AttributeValue::S(username.into()))
            .expression_attribute_values(":markers", AttributeValue::S(MARKER_PREFIX.into()))
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        items.extend(page.items().iter().cloned());
        start = page.last_evaluated_key;
        if start.is_none() {
            return items;
        }
    }
}

/// Items of `username`'s partition of the chats table whose sort key
/// starts with `prefix` (`ledger#hold#`, `ledger#release#`, ...), read
/// strongly consistent.
pub async fn ledger_entries(
    app: &App,
    username: &str,
    prefix: &str,
) -> Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
    use aws_sdk_dynamodb::types::AttributeValue;
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

/// `username`'s account item as stored, read strongly consistent.
pub async fn stored_account(
    app: &App,
    username: &str,
) -> std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue> {
    app.store
        .client()
        .get_item()
        .table_name(&app.store.tables().users)
        .key(
            "username",
            aws_sdk_dynamodb::types::AttributeValue::S(username.into()),
        )
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .expect("the account exists")
}

/// How many chats are saved for `username`.
pub async fn stored_chats(app: &App, username: &str) -> usize {
    saved_messages(app, username).await.len()
}

/// Counts every item in every table of the app: "nothing changed" checks.
pub async fn item_counts(app: &App) -> [i32; 3] {
    let tables = app.store.tables();
    let mut counts = [0; 3];
    for (i, name) in [&tables.users, &tables.credentials, &tables.chats]
        .into_iter()
        .enumerate()
    {
        counts[i] = app
            .store
            .client()
            .scan()
            .table_name(name)
            .select(Select::Count)
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .count;
    }
    counts
}

/// [`item_counts`] without the failed logins the slow-down counts
/// (`~login#...` in the credentials table): what a refused login may
/// change, by design, and nothing else.
pub async fn item_counts_beside_login_failures(app: &App) -> [i32; 3] {
    let mut counts = item_counts(app).await;
    counts[1] = app
        .store
        .client()
        .scan()
        .table_name(&app.store.tables().credentials)
        .filter_expression("NOT begins_with(username, :failures)")
        .expression_attribute_values(":failures", AttributeValue::S("~login#".into()))
        .select(Select::Count)
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .count;
    counts
}

/// `username`'s balance beside the sum of their ledger, as the audit reads
/// it; the user must have an account.
pub async fn audit_of(app: &App, username: &str) -> chat_core::store::Audit {
    let user = chat_core::domain::Username::from_stored(username).expect("a username");
    app.store
        .audit(&user)
        .await
        .expect("the audit reads")
        .unwrap_or_else(|| panic!("{username} has no account"))
}

/// The ledger invariant, as every test that moves tokens ends: `username`'s
/// balance is the sum of their ledger entries, no hold is left open, and
/// the account counts no open model call (each was counted out as its hold
/// closed).
pub async fn assert_ledger_balances(app: &App, username: &str) {
    let audit = audit_of(app, username).await;
    assert_eq!(
        audit.balance, audit.ledger_sum,
        "{username}: the balance is not the sum of the ledger ({} entries)",
        audit.entries
    );
    assert_eq!(audit.open_holds, 0, "{username}: a hold is still open");
    let open_calls = stored_account(app, username)
        .await
        .get("open_calls")
        .map_or(0, |n| n.as_n().unwrap().parse::<i64>().unwrap());
    assert_eq!(open_calls, 0, "{username}: the account counts open calls");
}

/// Another [`App`] on `app`'s tables and configuration, shareable: what a
/// handler that outlives its call (a stream) takes.
pub fn sharing(app: &App) -> Arc<App> {
    let mut twin =
        devtools::dynamodb_local::quiet_app(app.config.clone(), app.store.client().clone());
    twin.models = app.models.clone();
    twin.store = app.store.clone();
    Arc::new(twin)
}

/// A streamed answer read to its end, as the buffered answers are held.
pub async fn buffered(response: Response<StreamBody>) -> Response<Body> {
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.expect("the stream ends").to_bytes();
    Response::from_parts(parts, Body::Binary(bytes.to_vec()))
}

pub use lambda_http::lambda_runtime::streaming::Body as StreamBody;

/// Sets `username`'s count of open model calls, as an account that has
/// made paid calls carries it (older accounts have none).
pub async fn set_open_calls(app: &App, username: &str, open: u32) {
    app.store
        .client()
        .update_item()
        .table_name(&app.store.tables().users)
        .key(USERNAME, AttributeValue::S(username.into()))
        .update_expression("SET open_calls = :open")
        .expression_attribute_values(":open", AttributeValue::N(open.to_string()))
        .send()
        .await
        .unwrap();
}

/// A Lambda context whose invocation ends `left` from now.
pub fn lambda_context_ending_in(left: std::time::Duration) -> lambda_http::Context {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let mut context = lambda_http::Context::default();
    context.deadline = (now + left).as_millis() as u64;
    context
}
