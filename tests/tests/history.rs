//! `GET /chats/` against DynamoDB Local: newest first, pages that add up to
//! every saved chat exactly once, only the caller's chats, no idempotency
//! markers, free of charge, and every malformed parameter refused.

use api_tests::*;
use chat_core::App;
use devtools::dynamodb_local::fresh_app;
use lambda_http::http::Method;
use serde_json::Value;

async fn page(app: &App, token: &str, query: &str) -> (u16, Value) {
    let response = history::handle(app, chats_request(query, Some(token)))
        .await
        .unwrap();
    (response.status().as_u16(), json_of(&response))
}

fn messages(body: &Value) -> Vec<String> {
    body["chats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|chat| chat["message"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn pages_walk_every_chat_newest_first_exactly_once() {
    let app = fresh_app().await;
    let token = signed_up(&app, "alice").await;
    let sent: Vec<String> = (0..25).map(|i| format!("message {i:02}")).collect();
    for message in &sent {
        assert_eq!(chat_as(&app, &token, message).await.status(), 200);
    }
    // A keyed chat saves an idempotency marker beside the chat: the history
    // shows the chat once and never the marker.
    assert_eq!(
        keyed_chat_as(&app, &token, "key-1", "keyed").await.status(),
        200
    );
    assert_eq!(
        keyed_chat_as(&app, &token, "key-1", "keyed").await.status(),
        200
    );
    let tokens_before = stored_tokens(&app, "alice").await;

    let mut seen = Vec::new();
    let mut query = "limit=10".to_owned();
    let mut pages = 0;
    loop {
        let (status, body) = page(&app, &token, &query).await;
        assert_eq!(status, 200, "{body}");
        pages += 1;
        let chats = body["chats"].as_array().unwrap();
        assert!(chats.len() <= 10);
        for chat in chats {
            assert_eq!(chat["cost"], 100);
            assert_eq!(chat["response"], "AI response");
            assert!(chat["timestamp"].as_str().unwrap().ends_with('Z'));
            assert_eq!(chat.as_object().unwrap().len(), 5, "{chat}");
        }
        seen.extend(messages(&body));
        match body["next_cursor"].as_str() {
            Some(cursor) => query = format!("limit=10&cursor={cursor}"),
            None => break,
        }
    }
    let mut expected: Vec<String> = sent.clone();
    expected.push("keyed".to_owned());
    expected.reverse();
    assert_eq!(seen, expected, "newest first, each once, no marker");
    assert_eq!(
        pages, 3,
        "26 chats at 10 a page, the last page says it is last"
    );
    assert_eq!(
        stored_tokens(&app, "alice").await,
        tokens_before,
        "reading history is free"
    );
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn the_default_page_is_twenty_and_a_full_last_page_has_no_cursor() {
    let app = fresh_app().await;
    let token = signed_up(&app, "bob").await;
    for i in 0..20 {
        assert_eq!(chat_as(&app, &token, &format!("m{i}")).await.status(), 200);
    }
    let (status, body) = page(&app, &token, "").await;
    assert_eq!(status, 200);
    assert_eq!(messages(&body).len(), 20);
    assert_eq!(body["next_cursor"], Value::Null);

    let (_, body) = page(&app, &token, "limit=1").await;
    assert_eq!(messages(&body), ["m19"]);
    let cursor = body["next_cursor"].as_str().unwrap().to_owned();
    let (_, body) = page(&app, &token, &format!("limit=100&cursor={cursor}")).await;
    assert_eq!(messages(&body).len(), 19);
    assert_eq!(body["next_cursor"], Value::Null);
}

#[tokio::test]
async fn a_user_sees_only_their_own_chats() {
    let app = fresh_app().await;
    let alice = signed_up(&app, "alice").await;
    let bob = signed_up(&app, "bob").await;
    assert_eq!(chat_as(&app, &alice, "from alice").await.status(), 200);
    let (status, body) = page(&app, &bob, "").await;
    assert_eq!(status, 200);
    assert_eq!(messages(&body), Vec::<String>::new());
    assert_eq!(body["next_cursor"], Value::Null);

    // A cursor from Alice's history, used with Bob's token, still reads
    // only Bob's chats: the user always comes from the token.
    assert_eq!(chat_as(&app, &alice, "newer").await.status(), 200);
    let (_, body) = page(&app, &alice, "limit=1").await;
    assert_eq!(messages(&body), ["newer"]);
    let cursor = body["next_cursor"].as_str().unwrap().to_owned();
    let (status, body) = page(&app, &bob, &format!("cursor={cursor}")).await;
    assert_eq!(status, 200);
    assert_eq!(messages(&body), Vec::<String>::new());
}

#[tokio::test]
async fn bad_tokens_and_parameters_are_refused_and_change_nothing() {
    let app = fresh_app().await;
    let token = signed_up(&app, "carol").await;
    assert_eq!(chat_as(&app, &token, "hello").await.status(), 200);
    let before = item_counts(&app).await;

    let forged = "Y2Fyb2w.AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
    let (status, body) = page(&app, forged, "").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("unauthorized"))
    );
    let response = history::handle(&app, event("history-missing-token"))
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=-1", "limit"),
        ("limit=ten", "limit"),
        ("limit=+5", "limit"),
        ("limit=5.0", "limit"),
        ("limit=", "limit"),
        ("limit=5&limit=6", "limit"),
        ("cursor=not-a-cursor", "cursor"),
        ("cursor=", "cursor"),
        ("cursor=AAAA", "cursor"),
    ] {
        let (status, body) = page(&app, &token, query).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"], "invalid_field", "{query}");
        assert_eq!(body["field"], field, "{query}");
    }

    let response = history::handle(
        &app,
        with_method(with_auth(event("history"), &token), Method::POST),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "GET");
    assert_eq!(item_counts(&app).await, before);
    assert_eq!(stored_tokens(&app, "carol").await, Some(3900));
    assert_ledger_balances(&app, "carol").await;
}

#[tokio::test]
async fn a_page_cut_short_by_dynamodb_s_1_mb_limit_still_leads_to_the_rest() {
    let app = fresh_app().await;
    let token = signed_up(&app, "dora").await;
    // 8000 four-byte characters: 32 KB a chat, so 40 chats hold 1.25 MB and
    // one query cannot return them all, whatever `limit` asks for.
    let long = "\u{1F600}".repeat(8000);
    for i in 0..40 {
        let message = format!("{i:02}{}", &long[..long.len() - 8]);
        assert_eq!(
            chat_as(&app, &token, &message).await.status(),
            200,
            "chat {i}"
        );
    }
    let (status, first) = page(&app, &token, "limit=100").await;
    assert_eq!(status, 200);
    let first_count = messages(&first).len();
    assert!(first_count < 40, "DynamoDB stopped the query at 1 MB");
    let mut seen = messages(&first);
    let mut cursor = first["next_cursor"].as_str().map(str::to_owned);
    while let Some(next) = cursor {
        let (status, body) = page(&app, &token, &format!("limit=100&cursor={next}")).await;
        assert_eq!(status, 200);
        seen.extend(messages(&body));
        cursor = body["next_cursor"].as_str().map(str::to_owned);
    }
    let prefixes: Vec<String> = seen.iter().map(|m| m[..2].to_owned()).collect();
    let expected: Vec<String> = (0..40).rev().map(|i| format!("{i:02}")).collect();
    assert_eq!(prefixes, expected, "every chat, newest first, each once");
}
