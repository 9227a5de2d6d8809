//! Each handler called in process against DynamoDB Local, beside the bare
//! SDK call(s) it makes, built here by hand with the same items and
//! conditions. The difference is what our code adds: parsing, checks, JSON.
//! Register and login run argon2id by design, so their bare side runs the
//! same hash (or verification) before its SDK calls.

use std::future::Future;
use std::time::{Duration, Instant};

use api_tests::*;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use aws_sdk_dynamodb::Client;
use chat_core::domain::{AuthToken, Password, Username};
use chat_core::{clock, passwords, App, Config};
use devtools::dynamodb_local::{client, fresh_tables, quiet_app};
use lambda_http::Body;
use serde_json::{json, Value};

use crate::stats::{round, Summary};
use chat_core::store::{CHAT_ID, CREATED_AT, USERNAME};

type Response = lambda_http::Response<Body>;

pub async fn run(iterations: usize) -> Value {
    let client = client();
    let mut config = Config::with_tables(fresh_tables(&client).await);
    // One user pays for every chat of the run, faster than the per-user
    // rate allows: the cap is off, so its item is not in these figures.
    config.initial_tokens = 1_000_000_000;
    config.chats_per_minute = 0;
    let app = quiet_app(config, client.clone());
    let bare = Bare { app: &app, client };
    let token = signed_up(&app, "alice").await;
    let stored_hash = passwords::hash(password()).await.unwrap();
    let slow = (iterations / 4).max(20);

    let argon2 = Summary::of(&timed(slow, |_| passwords::hash(password())).await);
    println!("\n## In process, against DynamoDB Local ({iterations} calls; {slow} with argon2id)");
    println!(
        "argon2id hash (m=19456 KiB, t=2, p=1): p50 {:.2} ms, p99 {:.2} ms",
        argon2.p50, argon2.p99
    );
    println!(
        "{:<9} {:>11} {:>11} {:>10} {:>10} {:>13}",
        "handler", "p50 ms", "p99 ms", "bare p50", "bare p99", "overhead p50"
    );

    let mut rows = Vec::new();
    let mut row = |name: &str, handler: Vec<Duration>, sdk: Vec<Duration>| {
        let (handler, sdk) = (Summary::of(&handler), Summary::of(&sdk));
        let overhead = (handler.p50 - sdk.p50) / sdk.p50 * 100.0;
        println!(
            "{name:<9} {:>11.3} {:>11.3} {:>10.3} {:>10.3} {:>12.1}%",
            handler.p50, handler.p99, sdk.p50, sdk.p99, overhead
        );
        rows.push(json!({
            "handler": name,
            "handler_ms": handler.json(),
            "bare_sdk_ms": sdk.json(),
            "overhead_p50_percent": round(overhead),
        }));
    };

    // Each pair runs interleaved, so drift in the machine's load hits both.
    let (handler, sdk) = pairs(
        slow,
        |i| register_as(&app, format!("reg{i}")),
        |i| bare.register(format!("bare{i}")),
    )
    .await;
    row("register", handler, sdk);

    let (handler, sdk) = pairs(
        slow,
        // Each user logs in once: a user's sessions are bounded, and a
        // login past the bound costs a second write on both sides.
        |i| login_as(&app, format!("reg{i}")),
        |i| bare.login(format!("bare{i}"), stored_hash.clone()),
    )
    .await;
    row("login", handler, sdk);

    let (handler, sdk) = pairs(
        iterations,
        |_| chat_ok(&app, &token),
        |_| bare.chat(&token, "How fast is this?"),
    )
    .await;
    row("chat", handler, sdk);

    let (handler, sdk) = pairs(
        iterations,
        |_| balance_ok(&app, &token),
        |_| bare.balance(&token),
    )
    .await;
    row("balance", handler, sdk);

    let (handler, sdk) = pairs(
        iterations,
        |_| chats_page(&app, &token),
        |_| bare.chats(&token),
    )
    .await;
    row("history", handler, sdk);

    // Logging out needs a session per call; they are made untimed.
    let (mut handler, mut sdk) = (Vec::new(), Vec::new());
    for _ in 0..iterations {
        let (first, second) = (bare.session().await, bare.session().await);
        let request = with_auth(event("logout"), first.expose());
        let started = Instant::now();
        let response = logout::handle(&app, request).await.unwrap();
        handler.push(started.elapsed());
        assert_eq!(response.status(), 204);
        let started = Instant::now();
        bare.logout(&second).await;
        sdk.push(started.elapsed());
    }
    row("logout", handler, sdk);
    // Every chat above moved tokens, through the handler or by hand: the
    // balance must still be its ledger's sum.
    assert_ledger_balances(&app, "alice").await;

    json!({ "argon2id_hash_ms": argon2.json(), "handlers": rows })
}

fn password() -> Password {
    Password::parse(PASSWORD.to_owned()).unwrap()
}

async fn register_as(app: &App, username: String) -> Response {
    let response = register::handle(
        app,
        with_body(event("register"), &credentials(&username, PASSWORD)),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 201);
    response
}

/// A timed chat that must be answered: a refusal is quicker, and timing
/// one would flatter the figures.
async fn chat_ok(app: &App, token: &str) -> Response {
    let response = chat_as(app, token, "How fast is this?").await;
    assert_eq!(response.status(), 200);
    response
}

async fn balance_ok(app: &App, token: &str) -> Response {
    let response = balance_as(app, token).await;
    assert_eq!(response.status(), 200);
    response
}

async fn chats_page(app: &App, token: &str) -> Response {
    let response = history::handle(app, chats_request("", Some(token)))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response
}

async fn login_as(app: &App, username: String) -> Response {
    let response = login_with(app, &username, PASSWORD).await;
    assert_eq!(response.status(), 200);
    response
}

/// Times `count` calls, after a few untimed ones that open connections and
/// fault pages in.
async fn timed<T, F: Future<Output = T>>(
    count: usize,
    mut call: impl FnMut(usize) -> F,
) -> Vec<Duration> {
    for i in 0..3 {
        call(usize::MAX - i).await;
    }
    let mut samples = Vec::with_capacity(count);
    for i in 0..count {
        let started = Instant::now();
        call(i).await;
        samples.push(started.elapsed());
    }
    samples
}

async fn pairs<A, B, FA, FB>(
    count: usize,
    mut first: impl FnMut(usize) -> FA,
    mut second: impl FnMut(usize) -> FB,
) -> (Vec<Duration>, Vec<Duration>)
where
    FA: Future<Output = A>,
    FB: Future<Output = B>,
{
    for i in 0..3 {
        first(usize::MAX - i).await;
        second(usize::MAX - i).await;
    }
    let (mut a, mut b) = (Vec::with_capacity(count), Vec::with_capacity(count));
    // The order swaps every round: whatever the first call leaves behind
    // (DynamoDB Local still busy, caches, a freed 19 MiB hash buffer) falls
    // on both sides alike.
    for i in 0..count {
        if i % 2 == 0 {
            let started = Instant::now();
            first(i).await;
            a.push(started.elapsed());
            let started = Instant::now();
            second(i).await;
            b.push(started.elapsed());
        } else {
            let started = Instant::now();
            second(i).await;
            b.push(started.elapsed());
            let started = Instant::now();
            first(i).await;
            a.push(started.elapsed());
        }
    }
    (a, b)
}

/// The SDK calls the handlers make, with nothing around them.
struct Bare<'a> {
    app: &'a App,
    client: Client,
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

impl Bare<'_> {
    fn tables(&self) -> &chat_core::Tables {
        self.app.store.tables()
    }

    async fn register(&self, username: String) {
        let password_hash = passwords::hash(password()).await.unwrap();
        let now = clock::Timestamp::now();
        let account = Put::builder()
            .table_name(&self.tables().users)
            .item(USERNAME, s(&username))
            .item("tokens", n(4000))
            .item("sessions", AttributeValue::M(Default::default()))
            .item("version", n(0))
            .item(CREATED_AT, s(now.iso8601()))
            .condition_expression("attribute_not_exists(username)")
            .build()
            .unwrap();
        let grant = Put::builder()
            .table_name(&self.tables().chats)
            .item(USERNAME, s(&username))
            .item(
                "chat_id",
                s(format!("ledger#grant#{}", uuid::Uuid::now_v7())),
            )
            .item("kind", s("grant"))
            .item("amount", n(4000))
            .item("reason", s("registration"))
            .item(CREATED_AT, s(now.iso8601()))
            .condition_expression("attribute_not_exists(chat_id)")
            .build()
            .unwrap();
        let credentials = Put::builder()
            .table_name(&self.tables().credentials)
            .item(USERNAME, s(&username))
            .item("password_hash", s(password_hash))
            .item(CREATED_AT, s(now.iso8601()))
            .condition_expression("attribute_not_exists(username)")
            .build()
            .unwrap();
        self.client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(account).build())
            .transact_items(TransactWriteItem::builder().put(credentials).build())
            .transact_items(TransactWriteItem::builder().put(grant).build())
            .send()
            .await
            .unwrap();
    }

    async fn login(&self, username: String, stored_hash: String) {
        self.client
            .get_item()
            .table_name(&self.tables().credentials)
            .key(USERNAME, s(&username))
            .projection_expression("password_hash")
            .consistent_read(true)
            .send()
            .await
            .unwrap();
        assert!(passwords::verify(password(), Some(stored_hash))
            .await
            .unwrap());
        self.put_session(&username).await;
    }

    /// A new session of `username`'s, signed with the app's key and stored
    /// as login stores it (there is room: each user here logs in once, or
    /// ends what it starts).
    async fn put_session(&self, username: &str) -> AuthToken {
        let expires = clock::Timestamp::now().plus(Duration::from_secs(86_400));
        let token = self
            .app
            .auth
            .issue(&Username::parse(username).unwrap(), expires)
            .await
            .unwrap();
        self.client
            .update_item()
            .table_name(&self.tables().users)
            .key(USERNAME, s(username))
            .update_expression("SET sessions.#sid = :expires")
            .condition_expression("size(sessions) < :room")
            .expression_attribute_names("#sid", token.session_id().as_str())
            .expression_attribute_values(":expires", n(token.expires_at()))
            .expression_attribute_values(":room", n(10))
            .send()
            .await
            .unwrap();
        AuthToken::parse(token.expose()).unwrap()
    }

    /// A new live session of alice's, untimed set-up for logout.
    async fn session(&self) -> AuthToken {
        self.put_session("alice").await
    }

    async fn chat(&self, token: &str, message: &str) {
        let token = AuthToken::parse(token).unwrap();
        let user = token.username().as_str();
        let now = clock::Timestamp::now();
        let charge = Update::builder()
            .table_name(&self.tables().users)
            .key(USERNAME, s(user))
            .update_expression("SET tokens = tokens - :cost ADD version :one")
            .condition_expression("sessions.#sid > :now AND tokens >= :cost")
            .expression_attribute_names("#sid", token.session_id().as_str())
            .expression_attribute_values(":cost", n(100))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":now", n(now.unix_seconds()))
            .build()
            .unwrap();
        let save = Put::builder()
            .table_name(&self.tables().chats)
            .item(USERNAME, s(user))
            .item(CHAT_ID, s(uuid::Uuid::now_v7().to_string()))
            .item("message", s(message))
            .item("response", s("AI response"))
            .item("cost", n(100))
            .item("input_tokens", n(0))
            .item("output_tokens", n(0))
            .item("amount", n(-100))
            .item(CREATED_AT, s(now.iso8601()))
            .condition_expression("attribute_not_exists(chat_id)")
            .build()
            .unwrap();
        self.client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(charge).build())
            .transact_items(TransactWriteItem::builder().put(save).build())
            .send()
            .await
            .unwrap();
    }

    async fn account(&self, token: &AuthToken, projection: &str) {
        self.client
            .get_item()
            .table_name(&self.tables().users)
            .key(USERNAME, s(token.username().as_str()))
            .projection_expression(format!("{projection}, sessions.#sid"))
            .expression_attribute_names("#sid", token.session_id().as_str())
            .consistent_read(true)
            .send()
            .await
            .unwrap();
    }

    async fn balance(&self, token: &str) {
        self.account(&AuthToken::parse(token).unwrap(), "tokens")
            .await;
    }

    async fn chats(&self, token: &str) {
        let token = AuthToken::parse(token).unwrap();
        self.account(&token, "username").await;
        self.client
            .query()
            .table_name(&self.tables().chats)
            .key_condition_expression("username = :user AND chat_id < :before")
            .expression_attribute_values(":user", s(token.username().as_str()))
            .expression_attribute_values(":before", s("idempotency#"))
            .projection_expression("chat_id, message, #response, created_at, cost")
            .expression_attribute_names("#response", "response")
            .scan_index_forward(false)
            .limit(21)
            .consistent_read(true)
            .send()
            .await
            .unwrap();
    }

    async fn logout(&self, token: &AuthToken) {
        self.client
            .update_item()
            .table_name(&self.tables().users)
            .key(USERNAME, s(token.username().as_str()))
            .update_expression("REMOVE sessions.#sid")
            .condition_expression("attribute_exists(sessions.#sid)")
            .expression_attribute_names("#sid", token.session_id().as_str())
            .send()
            .await
            .unwrap();
    }
}
