//! `Idempotency-Key` on `POST /chat/`: a retry is answered with the first
//! reply and charged once, however late or however many at once.

use std::sync::Arc;

use api_tests::*;
use devtools::dynamodb_local::fresh_app;

#[tokio::test]
async fn a_retry_with_the_same_key_gets_the_same_reply_and_is_charged_once() {
    let app = fresh_app().await;
    let token = signed_up(&app, "alice").await;
    let first = keyed_chat_as(&app, &token, "order-42", "Hello").await;
    assert_eq!(first.status(), 200);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let again = keyed_chat_as(&app, &token, "order-42", "Hello").await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(
        json_of(&again),
        json_of(&first),
        "the same reply, timestamp included"
    );
    assert_eq!(stored_tokens(&app, "alice").await, Some(3900));
    assert_eq!(stored_chats(&app, "alice").await, 1);
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn the_same_key_with_another_message_is_422_and_charges_nothing() {
    let app = fresh_app().await;
    let token = signed_up(&app, "alice").await;
    assert_eq!(
        keyed_chat_as(&app, &token, "k1", "Hello").await.status(),
        200
    );
    let before = item_counts(&app).await;
    let response = keyed_chat_as(&app, &token, "k1", "Something else").await;
    assert_eq!(response.status(), 422);
    assert_eq!(json_of(&response)["error"], "idempotency_key_reused");
    assert_eq!(item_counts(&app).await, before);
    assert_eq!(stored_tokens(&app, "alice").await, Some(3900));
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_replay_is_answered_even_when_the_balance_could_not_pay_again() {
    let app = fresh_app().await;
    let token = signed_up(&app, "alice").await;
    for i in 0..39 {
        assert_eq!(
            chat_as(&app, &token, &format!("spend {i}")).await.status(),
            200
        );
    }
    assert_eq!(
        keyed_chat_as(&app, &token, "last", "the last one")
            .await
            .status(),
        200
    );
    assert_eq!(stored_tokens(&app, "alice").await, Some(0));
    let again = keyed_chat_as(&app, &token, "last", "the last one").await;
    assert_eq!(again.status(), 200, "{}", json_of(&again));
    assert_eq!(
        keyed_chat_as(&app, &token, "new", "one more")
            .await
            .status(),
        402
    );
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_simultaneous_sends_of_one_key_charge_once() {
    let app = Arc::new(fresh_app().await);
    let token = Arc::new(signed_up(&app, "alice").await);
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (app, token) = (app.clone(), token.clone());
            tokio::spawn(async move { keyed_chat_as(&app, &token, "burst", "Hello").await })
        })
        .collect();
    let mut bodies = Vec::new();
    for task in tasks {
        let response = task.await.unwrap();
        assert_eq!(response.status(), 200, "{}", json_of(&response));
        bodies.push(json_of(&response));
    }
    assert!(
        bodies.windows(2).all(|pair| pair[0] == pair[1]),
        "one reply for all"
    );
    assert_eq!(stored_tokens(&app, "alice").await, Some(3900));
    assert_eq!(stored_chats(&app, "alice").await, 1);
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn keys_belong_to_their_user() {
    let app = fresh_app().await;
    let alice = signed_up(&app, "alice").await;
    let bob = signed_up(&app, "bob").await;
    assert_eq!(
        keyed_chat_as(&app, &alice, "shared-key", "Hello")
            .await
            .status(),
        200
    );
    let response = keyed_chat_as(&app, &bob, "shared-key", "Hello").await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("idempotent-replayed").is_none());
    assert_eq!(stored_tokens(&app, "alice").await, Some(3900));
    assert_eq!(stored_tokens(&app, "bob").await, Some(3900));
    assert_ledger_balances(&app, "alice").await;
    assert_ledger_balances(&app, "bob").await;
}

#[tokio::test]
async fn a_malformed_key_is_400_and_charges_nothing() {
    let app = fresh_app().await;
    let token = signed_up(&app, "alice").await;
    let before = item_counts(&app).await;
    for key in ["k".repeat(65), "tab\tinside".to_string()] {
        let response = keyed_chat_as(&app, &token, &key, "Hello").await;
        assert_eq!(response.status(), 400, "{key:?}");
        let body = json_of(&response);
        assert_eq!(
            (body["error"].as_str(), body["field"].as_str()),
            (Some("invalid_field"), Some("Idempotency-Key"))
        );
    }
    assert_eq!(item_counts(&app).await, before);
}
