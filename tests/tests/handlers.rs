//! Each handler against DynamoDB Local, through `lambda_http` requests built
//! from `events/*.json`: the contract, every refusal, and that a refusal
//! changes nothing.

use api_tests::*;
use chat_core::clock::Timestamp;
use chat_core::deadline::Deadline;
use chat_core::domain::{AuthToken, Username};
use devtools::dynamodb_local::fresh_app;
use lambda_http::http::Method;

#[tokio::test]
async fn the_whole_journey_matches_the_contract() {
    let app = fresh_app().await;

    let response = register(&app, "alice").await;
    assert_eq!(response.status(), 201);
    assert_eq!(
        json_of(&response),
        serde_json::json!({"message": "User registered successfully."})
    );
    assert_eq!(stored_tokens(&app, "alice").await, Some(4000));

    let response = login::handle(
        &app,
        with_body(event("login"), &credentials("alice", PASSWORD)),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    let body = json_of(&response);
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();

    let response = chat_as(&app, &token, "Hello, how are you?").await;
    assert_eq!(response.status(), 200);
    let body = json_of(&response);
    assert_eq!(body["user"], "alice");
    assert_eq!(body["message"], "Hello, how are you?");
    assert_eq!(body["response"], "AI response");
    let timestamp = body["timestamp"].as_str().unwrap();
    assert!(
        timestamp.len() == 24 && timestamp.ends_with('Z') && timestamp.as_bytes()[10] == b'T',
        "ISO-8601 UTC with milliseconds: {timestamp}"
    );
    assert_eq!(body.as_object().unwrap().len(), 4, "{body}");

    let response = balance_as(&app, &token).await;
    assert_eq!(response.status(), 200);
    assert_eq!(json_of(&response), serde_json::json!({"tokens": 3900}));
    assert_eq!(stored_chats(&app, "alice").await, 1);
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn the_authorization_header_takes_a_bare_token_or_a_token_or_bearer_scheme() {
    let app = fresh_app().await;
    let token = signed_up(&app, "alice").await;
    for header in [
        token.clone(),
        format!("Token {token}"),
        format!("Bearer {token}"),
    ] {
        assert_eq!(balance_as(&app, &header).await.status(), 200, "{header}");
    }
}

#[tokio::test]
async fn a_duplicate_username_is_409_and_keeps_the_first_user() {
    let app = fresh_app().await;
    let token = signed_up(&app, "alice").await;
    chat_as(&app, &token, "spend some").await;
    let response = register(&app, "alice").await;
    assert_eq!(response.status(), 409);
    assert_eq!(json_of(&response)["error"], "username_taken");
    assert_eq!(
        stored_tokens(&app, "alice").await,
        Some(3900),
        "the balance was not reset"
    );
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn wrong_password_and_unknown_user_get_the_same_401() {
    let app = fresh_app().await;
    register(&app, "alice").await;
    let wrong = login::handle(
        &app,
        with_body(event("login"), &credentials("alice", "not-the-password")),
    )
    .await
    .unwrap();
    let unknown = login::handle(
        &app,
        with_body(event("login"), &credentials("nobody", PASSWORD)),
    )
    .await
    .unwrap();
    let invalid = login::handle(
        &app,
        with_body(event("login"), &credentials("no body", "x")),
    )
    .await
    .unwrap();
    for response in [&wrong, &unknown, &invalid] {
        assert_eq!(response.status(), 401);
    }
    assert_eq!(json_of(&wrong), json_of(&unknown));
    assert_eq!(json_of(&wrong), json_of(&invalid));
    assert_eq!(json_of(&wrong)["error"], "invalid_credentials");
}

#[tokio::test]
async fn each_login_gets_its_own_working_token() {
    let app = fresh_app().await;
    let first = signed_up(&app, "alice").await;
    let second = login::handle(
        &app,
        with_body(event("login"), &credentials("alice", PASSWORD)),
    )
    .await
    .unwrap();
    let second = json_of(&second)["token"].as_str().unwrap().to_owned();
    assert_ne!(first, second);
    assert_eq!(balance_as(&app, &first).await.status(), 200);
    assert_eq!(balance_as(&app, &second).await.status(), 200);
}

#[tokio::test]
async fn only_the_token_hash_is_stored() {
    let app = fresh_app().await;
    let token = signed_up(&app, "alice").await;
    let account = stored_account(&app, "alice").await;
    let text = format!("{account:?}");
    let session_id = AuthToken::parse(&token).unwrap().session_id();
    let sessions = account["sessions"].as_m().unwrap();
    assert_eq!(
        sessions.keys().collect::<Vec<_>>(),
        [session_id.as_str()],
        "one session, under the token's hash"
    );
    assert!(!text.contains(&token), "the raw token is not at rest");
    assert!(
        !text.contains(token.split('.').nth(1).unwrap()),
        "nor its secret part"
    );
    // What a chat's refusal hands back to the chat function is this item:
    // the password hash lives elsewhere.
    assert!(!text.contains("argon2"), "no password hash in the account");
    assert!(!account.contains_key("password_hash"));
}

#[tokio::test]
async fn ending_all_sessions_is_one_write_and_every_token_stops_at_once() {
    let (app, calls) = api_tests::calls::counted_app().await;
    register(&app, "alice").await;
    let tokens = [
        logged_in(&app, "alice").await,
        logged_in(&app, "alice").await,
        logged_in(&app, "alice").await,
    ];
    calls.take();
    let alice = Username::parse("alice").unwrap();
    assert_eq!(app.store.end_all_sessions(&alice).await.unwrap(), Some(3));
    assert_eq!(calls.take(), ["UpdateItem"]);
    for token in &tokens {
        assert_eq!(balance_as(&app, token).await.status(), 401);
        assert_eq!(chat_as(&app, token, "hi").await.status(), 401);
    }
    assert_eq!(stored_tokens(&app, "alice").await, Some(4000));
    // A new login works again; an unknown user has no sessions to end.
    let fresh = logged_in(&app, "alice").await;
    assert_eq!(balance_as(&app, &fresh).await.status(), 200);
    let nobody = Username::parse("nobody").unwrap();
    assert_eq!(app.store.end_all_sessions(&nobody).await.unwrap(), None);
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn an_empty_balance_gets_402_with_the_balance_and_is_not_charged() {
    let app = fresh_app().await;
    let token = signed_up(&app, "alice").await;
    for _ in 0..40 {
        assert_eq!(chat_as(&app, &token, "spend").await.status(), 200);
    }
    let response = chat_as(&app, &token, "one too many").await;
    assert_eq!(response.status(), 402);
    let body = json_of(&response);
    assert_eq!(body["error"], "insufficient_tokens");
    assert_eq!(body["tokens"], 0);
    assert_eq!(stored_tokens(&app, "alice").await, Some(0));
    assert_eq!(stored_chats(&app, "alice").await, 40);
    assert_eq!(
        json_of(&balance_as(&app, &token).await),
        serde_json::json!({"tokens": 0})
    );
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn refused_chats_change_nothing() {
    let app = fresh_app().await;
    let token = signed_up(&app, "alice").await;
    let other = signed_up(&app, "bob").await;
    let before = item_counts(&app).await;
    let forged = format!("{}.{}", "Ym9i", token.split_once('.').unwrap().1);
    let cases: Vec<(lambda_http::Request, u16, &str)> = vec![
        (
            with_body(event("chat-missing-token"), r#"{"message": "hi"}"#),
            401,
            "unauthorized",
        ),
        (
            with_auth(event("chat"), "Token garbage"),
            401,
            "unauthorized",
        ),
        (with_auth(event("chat"), &forged), 401, "unauthorized"),
        (
            with_auth(event("chat"), &format!("{token}x")),
            401,
            "unauthorized",
        ),
        (
            with_auth(with_body(event("chat"), "{"), &token),
            400,
            "invalid_json",
        ),
        (
            with_auth(with_body(event("chat"), "[]"), &token),
            400,
            "invalid_json",
        ),
        (
            with_auth(with_body(event("chat"), r#"{"message": 5}"#), &token),
            400,
            "invalid_field",
        ),
        (
            with_auth(with_body(event("chat"), r#"{"message": null}"#), &token),
            400,
            "invalid_field",
        ),
        (
            with_auth(with_body(event("chat"), r#"{"message": ["hi"]}"#), &token),
            400,
            "invalid_field",
        ),
        (
            with_auth(with_body(event("chat"), r#"{}"#), &token),
            400,
            "invalid_field",
        ),
        (
            with_auth(with_body(event("chat"), r#"{"message": "   "}"#), &token),
            400,
            "invalid_field",
        ),
        (
            with_auth(
                with_body(
                    event("chat"),
                    &serde_json::json!({"message": "x".repeat(8001)}).to_string(),
                ),
                &token,
            ),
            400,
            "invalid_field",
        ),
        (
            with_auth(
                with_body(
                    event("chat"),
                    &format!("{{\"message\": \"{}\"}}", "x".repeat(70_000)),
                ),
                &token,
            ),
            413,
            "payload_too_large",
        ),
        (
            with_method(with_auth(event("chat"), &token), Method::GET),
            405,
            "method_not_allowed",
        ),
    ];
    for (request, status, code) in cases {
        let response = chat::handle(&app, request).await.unwrap();
        assert_eq!(response.status(), status, "{code}");
        assert_eq!(json_of(&response)["error"], code);
    }
    assert_eq!(item_counts(&app).await, before);
    assert_eq!(stored_tokens(&app, "alice").await, Some(4000));
    assert_eq!(stored_tokens(&app, "bob").await, Some(4000));
    assert_eq!(balance_as(&app, &other).await.status(), 200);
    assert_ledger_balances(&app, "alice").await;
    assert_ledger_balances(&app, "bob").await;
}

#[tokio::test]
async fn an_expired_session_is_refused_before_dynamodb_ttl_removes_it() {
    let app = fresh_app().await;
    register(&app, "alice").await;
    let now = Timestamp::now();
    // A session started as a tool starts one, expiring at `expires`.
    let session_until = |expires: Timestamp| {
        let app = &app;
        async move {
            let alice = Username::parse("alice").unwrap();
            let token = app.auth.issue(&alice, expires).await.unwrap();
            app.store
                .create_session(&token, now, Deadline::none())
                .await
                .unwrap();
            token
        }
    };
    // Expired this very second, and still in the account item.
    let token = session_until(now).await;
    let before = item_counts(&app).await;
    assert_eq!(chat_as(&app, token.expose(), "hi").await.status(), 401);
    assert_eq!(balance_as(&app, token.expose()).await.status(), 401);
    assert_eq!(item_counts(&app).await, before);
    // One that has not expired lets its token in.
    let live = session_until(now.plus(std::time::Duration::from_secs(60))).await;
    assert_eq!(balance_as(&app, live.expose()).await.status(), 200);
    assert_eq!(stored_tokens(&app, "alice").await, Some(4000));
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_message_of_exactly_8000_characters_is_charged_and_saved() {
    let app = fresh_app().await;
    let token = signed_up(&app, "alice").await;
    let message = "ü".repeat(8000);
    let response = chat_as(&app, &token, &message).await;
    assert_eq!(response.status(), 200);
    assert_eq!(json_of(&response)["message"], message.as_str());
    assert_eq!(stored_chats(&app, "alice").await, 1);
}

#[tokio::test]
async fn refused_registrations_change_nothing() {
    let app = fresh_app().await;
    let cases = [
        ("{", "invalid_json"),
        ("", "invalid_json"),
        ("[\"alice\", \"password1\"]", "invalid_json"),
        (
            r#"{"username": "alice", "username": "bob", "password": "long-enough"}"#,
            "invalid_json",
        ),
        (
            r#"{"username": 123, "password": "long-enough"}"#,
            "invalid_field",
        ),
        (
            r#"{"username": null, "password": "long-enough"}"#,
            "invalid_field",
        ),
        (
            r#"{"username": ["alice"], "password": "long-enough"}"#,
            "invalid_field",
        ),
        (
            r#"{"username": "alice", "password": 12345678}"#,
            "invalid_field",
        ),
        (r#"{"username": "alice"}"#, "invalid_field"),
        (r#"{"password": "long-enough"}"#, "invalid_field"),
        (
            r#"{"username": "", "password": "long-enough"}"#,
            "invalid_field",
        ),
        (
            r#"{"username": "al ice", "password": "long-enough"}"#,
            "invalid_field",
        ),
        (
            r#"{"username": "alice", "password": "short"}"#,
            "invalid_field",
        ),
    ];
    for (body, code) in cases {
        let response = register::handle(&app, with_body(event("register"), body))
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{body}");
        assert_eq!(json_of(&response)["error"], code, "{body}");
    }
    let long_name = credentials(&"a".repeat(151), PASSWORD);
    let response = register::handle(&app, with_body(event("register"), &long_name))
        .await
        .unwrap();
    assert_eq!(json_of(&response)["field"], "username");
    let long_password = credentials("alice", &"p".repeat(1025));
    let response = register::handle(&app, with_body(event("register"), &long_password))
        .await
        .unwrap();
    assert_eq!(json_of(&response)["field"], "password");
    assert_eq!(item_counts(&app).await, [0, 0, 0]);
}

#[tokio::test]
async fn balance_refuses_bad_tokens_and_the_wrong_method() {
    let app = fresh_app().await;
    let token = signed_up(&app, "alice").await;
    let (user_part, secret) = token.split_once('.').unwrap();
    let cases = [
        with_auth(event("balance"), "Token"),
        with_auth(event("balance"), &format!("Basic {token}")),
        with_auth(event("balance"), &format!("Ym9i.{secret}")),
        with_auth(event("balance"), &format!("{user_part}.{}", "A".repeat(43))),
        with_auth(event("balance"), &token[..token.len() - 2]),
        event("balance-missing-token"),
    ];
    for request in cases {
        let response = balance::handle(&app, request).await.unwrap();
        assert_eq!(response.status(), 401);
        assert_eq!(response.headers()["www-authenticate"], "Token");
        assert_eq!(json_of(&response)["error"], "unauthorized");
    }
    let response = balance::handle(
        &app,
        with_method(with_auth(event("balance"), &token), Method::POST),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 405);
}

#[tokio::test]
async fn logout_ends_that_session_only() {
    let app = fresh_app().await;
    let first = signed_up(&app, "alice").await;
    let second = json_of(
        &login::handle(
            &app,
            with_body(event("login"), &credentials("alice", PASSWORD)),
        )
        .await
        .unwrap(),
    )["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let logout_with = |token: &str| logout::handle(&app, with_auth(event("logout"), token));

    let response = logout_with(&first).await.unwrap();
    assert_eq!(response.status(), 204);
    assert!(response.body().is_empty());
    assert_eq!(balance_as(&app, &first).await.status(), 401);
    assert_eq!(chat_as(&app, &first, "after logout").await.status(), 401);
    assert_eq!(
        balance_as(&app, &second).await.status(),
        200,
        "the other login lives on"
    );

    assert_eq!(
        logout_with(&first).await.unwrap().status(),
        401,
        "already ended"
    );
    let forged = format!("Ym9i.{}", second.split_once('.').unwrap().1);
    assert_eq!(logout_with(&forged).await.unwrap().status(), 401);
    assert_eq!(
        balance_as(&app, &second).await.status(),
        200,
        "a forged token ends nothing"
    );
    assert_eq!(stored_tokens(&app, "alice").await, Some(4000));
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_full_width_look_alike_cannot_register_a_second_alice_but_logs_in_as_her() {
    let app = fresh_app().await;
    assert_eq!(register(&app, "alice").await.status(), 201);
    let response = register(&app, "ａｌｉｃｅ").await;
    assert_eq!(response.status(), 400);
    assert_eq!(json_of(&response)["field"], "username");
    // As Django's login form does: NFKC first, so it is alice's account.
    let response = login_with(&app, "ａｌｉｃｅ", PASSWORD).await;
    assert_eq!(response.status(), 200);
    let token = json_of(&response)["token"].as_str().unwrap().to_owned();
    assert_eq!(balance_as(&app, &token).await.status(), 200);
    assert_eq!(item_counts(&app).await[0], 2, "alice and the signing key");
    assert_ledger_balances(&app, "alice").await;
}
