//! Rotating the token-signing key with `chat-ops rotate-key`: new tokens are
//! signed with the new key, tokens of the old one keep working until they
//! expire, and then `chat-ops retire-key` ends the old key; it refuses to
//! while a token it signed can still be live, unless forced. A function
//! reads a key it does not hold yet (signed by an instance that read the
//! rotation first) at once, and a stream of made-up key ids costs at most
//! one read every ten seconds.

use api_tests::calls::counted_app;
use api_tests::ops::{chat_ops, stderr, stdout};
use api_tests::*;
use aws_sdk_dynamodb::types::AttributeValue;
use chat_core::clock::Timestamp;
use chat_core::domain::{AuthToken, SigningKey, Username};
use chat_core::store::SIGNING_KEY_ITEM;
use chat_core::store::{CHAT_ID, USERNAME};
use chat_core::App;
use devtools::dynamodb_local::{fresh_app, quiet_app};
use serde_json::json;

/// A function started now: its own read of the keys.
async fn cold(app: &App) -> App {
    let cold = quiet_app(app.config.clone(), app.store.client().clone());
    cold.auth.warm_up().await;
    cold
}

fn key_id_of(token: &str) -> u8 {
    AuthToken::parse(token).unwrap().key_id()
}

/// An API key for the session `token`: the key and its id.
async fn api_key(app: &App, token: &str) -> (String, String) {
    let body = json!({"name": "ci"}).to_string();
    let response = keys::handle(app, with_auth(with_body(event("keys"), &body), token))
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let created = json_of(&response);
    (
        created["key"].as_str().unwrap().to_owned(),
        created["id"].as_str().unwrap().to_owned(),
    )
}

/// Moves key `id`'s rotation to `seconds` (epoch): as if that long had
/// passed since.
async fn rotated_at(app: &App, id: &str, seconds: i64) {
    app.store
        .client()
        .update_item()
        .table_name(&app.store.tables().users)
        .key(USERNAME, AttributeValue::S(SIGNING_KEY_ITEM.into()))
        .update_expression("SET previous.#id.rotated_at = :at")
        .condition_expression("attribute_exists(previous.#id)")
        .expression_attribute_names("#id", id)
        .expression_attribute_values(":at", AttributeValue::N(seconds.to_string()))
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn a_rotation_signs_new_tokens_with_the_new_key_and_old_ones_work_until_it_is_retired() {
    let app = fresh_app().await;
    let old_session = signed_up(&app, "alice").await;
    let (old_key, _) = api_key(&app, &old_session).await;
    assert_eq!(key_id_of(&old_session), 1);

    let rotated = chat_ops(&app, &["rotate-key"]);
    assert_eq!(rotated.status.code(), Some(0), "{}", stderr(&rotated));
    assert!(
        stdout(&rotated).contains("key 2 signs new tokens"),
        "{}",
        stdout(&rotated)
    );

    // A function that reads the keys now signs with the new one; tokens of
    // the old one still work there, and the new ones work in a function
    // that read the keys before the rotation.
    let after = cold(&app).await;
    let new_session = logged_in(&after, "alice").await;
    assert_eq!(key_id_of(&new_session), 2);
    for token in [&old_session, &old_key, &new_session] {
        assert_eq!(balance_as(&after, token).await.status(), 200);
        assert_eq!(balance_as(&app, token).await.status(), 200);
        assert_eq!(chat_as(&after, token, "hello").await.status(), 200);
    }

    // Not retired while a session of the old key can still be live.
    let refused = chat_ops(&app, &["retire-key", "1"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("may be live until"),
        "{}",
        stderr(&refused)
    );
    // Nor the current key, nor one that does not exist.
    assert_eq!(chat_ops(&app, &["retire-key", "2"]).status.code(), Some(1));
    assert_eq!(chat_ops(&app, &["retire-key", "7"]).status.code(), Some(2));

    // Forced (a leaked key): every token it signed stops at once, in a
    // function that reads the keys from now on.
    let forced = chat_ops(&app, &["retire-key", "1", "--force"]);
    assert_eq!(forced.status.code(), Some(0), "{}", stderr(&forced));
    let later = cold(&app).await;
    assert_eq!(balance_as(&later, &old_session).await.status(), 401);
    assert_eq!(chat_as(&later, &old_key, "hello").await.status(), 401);
    assert_eq!(balance_as(&later, &new_session).await.status(), 200);
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn retiring_waits_for_the_sessions_and_the_api_keys_the_old_key_signed() {
    let app = fresh_app().await;
    let session = signed_up(&app, "alice").await;
    let (key, key_id) = api_key(&app, &session).await;
    assert_eq!(chat_ops(&app, &["rotate-key"]).status.code(), Some(0));
    // Two days on: every session of key 1 has expired (a day's TTL and
    // five minutes for the functions to read the rotation), but the API
    // key, made before the rotation, is still live.
    let now = Timestamp::now().unix_seconds();
    rotated_at(&app, "1", now - 2 * 86_400).await;
    app.store
        .client()
        .update_item()
        .table_name(&app.store.tables().chats)
        .key(USERNAME, AttributeValue::S("alice".into()))
        .key(CHAT_ID, AttributeValue::S(format!("key#{key_id}")))
        .update_expression("SET created_at = :at")
        .expression_attribute_values(
            ":at",
            AttributeValue::S(
                Timestamp::from_unix_seconds(now - 3 * 86_400)
                    .unwrap()
                    .iso8601(),
            ),
        )
        .send()
        .await
        .unwrap();
    let refused = chat_ops(&app, &["retire-key", "1"]);
    assert_eq!(refused.status.code(), Some(1));
    let text = stderr(&refused);
    assert!(text.contains("1 live API keys"), "{text}");
    assert!(text.contains(&format!("alice  {key_id}  ci")), "{text}");
    // Once the key is revoked, nothing key 1 signed can be live.
    let mut delete = with_auth(event("keys-delete-unknown"), &session);
    *delete.uri_mut() = format!("/keys/{key_id}").parse().unwrap();
    assert_eq!(keys::handle(&app, delete).await.unwrap().status(), 204);
    let retired = chat_ops(&app, &["retire-key", "1"]);
    assert_eq!(retired.status.code(), Some(0), "{}", stderr(&retired));
    assert_eq!(chat_as(&cold(&app).await, &key, "hi").await.status(), 401);
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_token_naming_an_unknown_key_is_read_for_once_then_at_most_every_ten_seconds() {
    let (app, calls) = counted_app().await;
    let _ = signed_up(&app, "alice").await;
    let warm = cold(&app).await;
    calls.take();
    let alice = Username::parse("alice").unwrap();
    let later = Timestamp::now().unix_seconds() + 3600;
    let made_up = AuthToken::issue(&alice, later, &SigningKey::generate(9).unwrap()).unwrap();
    assert_eq!(balance_as(&warm, made_up.expose()).await.status(), 401);
    assert_eq!(calls.take(), ["GetItem"], "the first is read for");
    for _ in 0..20 {
        assert_eq!(balance_as(&warm, made_up.expose()).await.status(), 401);
    }
    assert_eq!(calls.take(), Vec::<String>::new(), "the rest cost nothing");
}
