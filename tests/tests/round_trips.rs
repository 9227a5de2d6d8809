//! The round-trip budget of DESIGN.md as a count, not a time: the DynamoDB
//! calls each handler sends, read by an SDK interceptor. One for chat (a
//! replay included), balance, register and logout; three for a login that
//! gets in (docs/design.md says why it is not two), two for one that does
//! not, whether or not the name exists; a history page's session read and
//! its query. Refusals may cost less, never more; a token the server did
//! not sign costs nothing. And a warm function reuses its connection.

use std::io::copy;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use api_tests::calls::counted_app;
use api_tests::*;
use chat_core::clock::Timestamp;
use chat_core::config::Config;
use chat_core::domain::{AuthToken, SigningKey, Username};
use chat_core::store::MAX_SESSIONS;
use devtools::dynamodb_local::{client_for, endpoint, fresh_tables, quiet_app};
use std::time::Duration;

#[tokio::test]
async fn every_endpoint_sits_on_the_design_floor() {
    let (app, calls) = counted_app().await;
    // A deployment's first login makes the signing key; a function reads
    // it once, at its cold start. Neither is a per-request cost.
    signed_up(&app, "first").await;
    calls.take();

    assert_eq!(register(&app, "alice").await.status(), 201);
    assert_eq!(calls.take(), ["TransactWriteItems"], "register");

    // The read of the credentials and the failures, the slot's write
    // before the hash, the session's write (which forgets the failures).
    let token = logged_in(&app, "alice").await;
    assert_eq!(
        calls.take(),
        ["BatchGetItem", "TransactWriteItems", "TransactWriteItems"],
        "login"
    );

    assert_eq!(chat_as(&app, &token, "hello").await.status(), 200);
    assert_eq!(calls.take(), ["TransactWriteItems"], "chat");

    assert_eq!(keyed_chat_as(&app, &token, "k1", "hi").await.status(), 200);
    assert_eq!(calls.take(), ["TransactWriteItems"], "keyed chat");
    let replay = keyed_chat_as(&app, &token, "k1", "hi").await;
    assert_eq!(replay.status(), 200);
    assert_eq!(calls.take(), ["TransactWriteItems"], "replayed chat");

    assert_eq!(balance_as(&app, &token).await.status(), 200);
    assert_eq!(calls.take(), ["GetItem"], "balance");
    // The threshold: one conditional write, which hands the balance back.
    let set = balance::handle(&app, with_auth(event("balance-alert"), &token))
        .await
        .unwrap();
    assert_eq!(set.status(), 200);
    assert_eq!(calls.take(), ["UpdateItem"], "balance alert threshold");
    // Bad input is refused before any call.
    let bad = balance::handle(&app, with_auth(event("balance-alert-invalid"), &token))
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert!(calls.take().is_empty(), "a refused threshold costs nothing");

    // The session is read before the page's query is sent.
    let response = history::handle(&app, with_auth(event("history"), &token))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(calls.take(), ["GetItem", "Query"], "history page");

    let response = logout::handle(&app, with_auth(event("logout"), &token))
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(calls.take(), ["UpdateItem"], "logout");
}

/// Embeddings sit on the same floor as a chat: one transaction for the
/// local embedder's (charge and save), two for Bedrock's (hold, settle),
/// however many inputs; a replay one.
#[tokio::test]
async fn embeddings_sit_on_the_chats_floor() {
    use api_tests::converse_stub::{Answer, ConverseStub};
    let (mut app, calls) = counted_app().await;
    let stub = ConverseStub::start(Answer::embedding(2));
    let titan = chat_core::served::EmbeddingModel {
        id: "titan".to_owned(),
        embedder: Arc::new(
            stub.embedder(chat_model::ModelConfig::new("amazon.titan-embed-text-v2:0")),
        ),
        pricing: chat_core::pricing::Pricing::Usage(chat_core::pricing::UsagePrices {
            input_per_1000: 1000,
            ..Default::default()
        }),
    };
    let local = chat_model::local_embedding(app.config.pricing).unwrap();
    app.models = app.models.clone().with_embedding(vec![titan, local]);
    let token = signed_up(&app, "alice").await;
    calls.take();
    let embed = |model: &str, key: Option<&str>| {
        let body = serde_json::json!({"model": model, "input": ["one", "two", "three"]});
        let mut request = with_auth(with_body(event("embeddings"), &body.to_string()), &token);
        if let Some(key) = key {
            request
                .headers_mut()
                .insert("idempotency-key", key.parse().unwrap());
        }
        embeddings::handle(&app, request)
    };
    assert_eq!(embed("dummy-embedding", None).await.unwrap().status(), 200);
    assert_eq!(calls.take(), ["TransactWriteItems"], "local embeddings");
    assert_eq!(embed("titan", Some("t")).await.unwrap().status(), 200);
    assert_eq!(
        calls.take(),
        ["TransactWriteItems", "TransactWriteItems"],
        "Bedrock embeddings"
    );
    assert_eq!(embed("titan", Some("t")).await.unwrap().status(), 200);
    assert_eq!(calls.take(), ["TransactWriteItems"], "replayed embeddings");
    assert_eq!(stub.call_count(), 3);
}

#[tokio::test]
async fn the_key_is_read_once_per_cold_start_and_a_full_account_costs_a_login_one_write_more() {
    let (app, calls) = counted_app().await;
    assert_eq!(register(&app, "alice").await.status(), 201);
    calls.take();
    // No key yet: the first login reads, finds none, makes it.
    logged_in(&app, "alice").await;
    assert_eq!(
        calls.take(),
        [
            "BatchGetItem",
            "TransactWriteItems",
            "GetItem",
            "PutItem",
            "TransactWriteItems"
        ],
        "a deployment's first login"
    );
    let cold = quiet_app(app.config.clone(), app.store.client().clone());
    cold.auth.warm_up().await;
    assert_eq!(calls.take(), ["GetItem"], "a cold start");

    for _ in 1..MAX_SESSIONS {
        logged_in(&cold, "alice").await;
    }
    assert_eq!(calls.take().len(), 3 * (MAX_SESSIONS - 1), "room for each");
    logged_in(&cold, "alice").await;
    assert_eq!(
        calls.take(),
        [
            "BatchGetItem",
            "TransactWriteItems",
            "TransactWriteItems",
            "TransactWriteItems"
        ],
        "the first refused for room, the second ends the oldest session too"
    );
}

#[tokio::test]
async fn refusals_cost_at_most_the_same_and_malformed_input_costs_nothing() {
    let (app, calls) = counted_app().await;
    let token = signed_up(&app, "bob").await;
    let ended = logged_in(&app, "bob").await;
    let response = logout::handle(&app, with_auth(event("logout"), &ended))
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    calls.take();

    // Decided by DynamoDB: one call, as on the happy path.
    assert_eq!(register(&app, "bob").await.status(), 409);
    assert_eq!(calls.take(), ["TransactWriteItems"], "duplicate register");
    assert_eq!(
        login_with(&app, "bob", "not-the-password").await.status(),
        401
    );
    // The read, and the slot's write (the failure counted before the hash
    // is checked): one fewer than a login that gets in.
    assert_eq!(
        calls.take(),
        ["BatchGetItem", "TransactWriteItems"],
        "wrong password"
    );
    // The same for a name nobody has: the answer and the work of a refusal
    // never tell whether a name exists.
    assert_eq!(
        login_with(&app, "nobody", "not-the-password")
            .await
            .status(),
        401
    );
    assert_eq!(
        calls.take(),
        ["BatchGetItem", "TransactWriteItems"],
        "unknown user"
    );
    assert_eq!(chat_as(&app, &ended, "hi").await.status(), 401);
    assert_eq!(calls.take(), ["TransactWriteItems"], "chat, ended session");
    assert_eq!(balance_as(&app, &ended).await.status(), 401);
    assert_eq!(calls.take(), ["GetItem"], "balance, ended session");
    // No query for an ended session: it must not cost a page read.
    let response = history::handle(&app, with_auth(event("history"), &ended))
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(calls.take(), ["GetItem"], "history, ended session");
    let response = logout::handle(&app, with_auth(event("logout"), &ended))
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(calls.take(), ["UpdateItem"], "logout, ended session");

    // Signed with another key, or expired: refused in code, so a stranger
    // never puts bob's account into a transaction.
    let bob = Username::parse("bob").unwrap();
    let later = Timestamp::now()
        .plus(Duration::from_secs(3600))
        .unix_seconds();
    let foreign_key = SigningKey::generate(1).unwrap();
    let forged = AuthToken::issue(&bob, later, &foreign_key).unwrap();
    let expired = app.auth.issue(&bob, Timestamp::now()).await.unwrap();
    for bad in [forged.expose(), expired.expose()] {
        assert_eq!(chat_as(&app, bad, "hi").await.status(), 401);
        assert_eq!(balance_as(&app, bad).await.status(), 401);
        let page = history::handle(&app, with_auth(event("history"), bad)).await;
        assert_eq!(page.unwrap().status(), 401);
        let out = logout::handle(&app, with_auth(event("logout"), bad)).await;
        assert_eq!(out.unwrap().status(), 401);
        assert_eq!(calls.take(), Vec::<String>::new(), "a token not ours");
    }

    // Refused before DynamoDB: nothing sent.
    let cases = [
        (
            "register-invalid-json",
            register::handle(&app, event("register-invalid-json")).await,
        ),
        (
            "register-short-password",
            register::handle(&app, event("register-short-password")).await,
        ),
        (
            "login-missing-password",
            login::handle(&app, event("login-missing-password")).await,
        ),
        (
            "chat-missing-token",
            chat::handle(&app, event("chat-missing-token")).await,
        ),
        (
            "chat-empty-message",
            chat::handle(&app, with_auth(event("chat-empty-message"), &token)).await,
        ),
        (
            "chat-invalid-json",
            chat::handle(&app, with_auth(event("chat-invalid-json"), &token)).await,
        ),
        (
            "balance-missing-token",
            balance::handle(&app, event("balance-missing-token")).await,
        ),
        (
            "logout-missing-token",
            logout::handle(&app, event("logout-missing-token")).await,
        ),
    ];
    for (name, response) in cases {
        let status = response.unwrap().status();
        assert!(status.is_client_error(), "{name}: {status}");
        assert_eq!(calls.take(), Vec::<String>::new(), "{name}");
    }

    // The last affordable chat and the first refused one: one call each.
    for _ in 0..40 {
        assert_eq!(chat_as(&app, &token, "spend").await.status(), 200);
    }
    calls.take();
    assert_eq!(chat_as(&app, &token, "one too many").await.status(), 402);
    assert_eq!(calls.take(), ["TransactWriteItems"], "insufficient tokens");
}

/// Counts the TCP connections made through it to DynamoDB Local.
struct CountingProxy {
    url: String,
    connections: Arc<AtomicUsize>,
}

impl CountingProxy {
    fn start(upstream: &str) -> Self {
        let upstream = upstream
            .strip_prefix("http://")
            .expect("DynamoDB Local is plain HTTP")
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = connections.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let client = client.unwrap();
                counter.fetch_add(1, Ordering::SeqCst);
                let server = TcpStream::connect(&upstream).unwrap();
                pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
                pipe(server, client);
            }
        });
        CountingProxy { url, connections }
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let _ = copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Write);
    });
}

#[tokio::test]
async fn a_warm_function_reuses_one_connection() {
    let proxy = CountingProxy::start(endpoint());
    let client = client_for(&proxy.url);
    let app = quiet_app(Config::with_tables(fresh_tables(&client).await), client);
    let token = signed_up(&app, "carol").await;
    let before = proxy.connections.load(Ordering::SeqCst);

    for _ in 0..20 {
        assert_eq!(chat_as(&app, &token, "again").await.status(), 200);
        assert_eq!(balance_as(&app, &token).await.status(), 200);
    }
    assert_eq!(
        proxy.connections.load(Ordering::SeqCst),
        before,
        "40 sequential calls after sign-up opened new connections"
    );
    assert!(before >= 1, "the proxy saw the sign-up");
}
