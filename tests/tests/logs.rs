//! Everything the functions log during a full journey, captured through the
//! same subscriber set-up a Lambda uses, holds no secret: no password, no
//! token or its secret part, no token hash, no password hash.

use std::io::Write;
use std::sync::{Arc, Mutex};

use api_tests::*;
use aws_sdk_dynamodb::types::AttributeValue;
use chat_core::domain::AuthToken;
use chat_core::store::USERNAME;
use devtools::dynamodb_local::fresh_app;
use lambda_http::tracing::subscriber::fmt::MakeWriter;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn a_full_journey_logs_no_secret_even_at_debug_level() {
    // This binary holds this one test, so setting the level for the whole
    // process races with nothing. Debug: more than production logs (info).
    std::env::set_var("RUST_LOG", "debug");
    let captured = Captured::default();
    lambda_http::tracing::init_default_subscriber_with_writer(captured.clone());

    let app = fresh_app().await;
    let other_password = "another-secret-password";
    let token = signed_up(&app, "alice").await;
    assert_eq!(chat_as(&app, &token, "hello").await.status(), 200);
    assert_eq!(balance_as(&app, &token).await.status(), 200);
    let wrong = credentials("alice", other_password);
    assert_eq!(
        login::handle(&app, with_body(event("login"), &wrong))
            .await
            .unwrap()
            .status(),
        401
    );
    let (_, secret) = token.split_once('.').unwrap();
    let forged = format!("Ym9i.{secret}");
    assert_eq!(chat_as(&app, &forged, "hello").await.status(), 401);
    assert_eq!(balance_as(&app, &format!("{token}x")).await.status(), 401);

    let user = app
        .store
        .client()
        .get_item()
        .table_name(&app.store.tables().credentials)
        .key(USERNAME, AttributeValue::S("alice".into()))
        .send()
        .await
        .unwrap();
    let password_hash = user.item().unwrap()["password_hash"]
        .as_s()
        .unwrap()
        .clone();
    let token_hash = AuthToken::parse(&token)
        .unwrap()
        .session_id()
        .as_str()
        .to_owned();

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("chat charged"), "the capture works: {logs}");
    for (name, secret) in [
        ("password", PASSWORD),
        ("wrong password", other_password),
        ("token", token.as_str()),
        ("token secret", secret),
        ("token hash", token_hash.as_str()),
        ("password hash", password_hash.as_str()),
    ] {
        assert!(!logs.contains(secret), "the logs hold the {name}");
    }
}
