//! Limits against abuse, on DynamoDB Local: failed logins slow the next
//! ones down (and a success forgets them), each user's chats per minute are
//! capped across instances with the exact count admitted, and registration
//! can be closed or need an invite. Every refusal changes nothing.

use std::sync::Arc;
use std::time::Duration;

use api_tests::completion::{complete, simultaneous_completions};
use api_tests::*;
use chat_core::clock::Timestamp;
use chat_core::config::Registration;
use chat_core::{App, Config};
use devtools::dynamodb_local::{client, fresh_tables, quiet_app};
use serde_json::json;

async fn app_with(configure: impl FnOnce(&mut Config)) -> App {
    let client = client();
    let mut config = Config::with_tables(fresh_tables(&client).await);
    configure(&mut config);
    quiet_app(config, client)
}

/// Waits out the end of the current minute if it is near, so a test's
/// chats all fall in one minute's count.
async fn early_in_a_minute() {
    let into = Timestamp::now().unix_seconds().rem_euclid(60);
    if into > 50 {
        tokio::time::sleep(Duration::from_secs((61 - into) as u64)).await;
    }
}

#[tokio::test]
async fn failed_logins_slow_the_next_down_and_a_success_forgets_them() {
    let app = fresh_app().await;
    let _ = signed_up(&app, "alice").await;
    for _ in 0..5 {
        let response = login_with(&app, "alice", "wrong-password-1").await;
        assert_eq!(response.status(), 401);
    }
    // Each failure after the fifth makes the next try wait twice as long
    // (1 s, 2 s, 4 s, ...); a try that is told to wait is not counted.
    let mut failures = 5;
    while failures < 8 {
        let response = login_with(&app, "alice", "wrong-password-1").await;
        match response.status().as_u16() {
            401 => failures += 1,
            429 => tokio::time::sleep(Duration::from_secs(retry_after(&response))).await,
            other => panic!("{other}"),
        }
    }
    // 8 s now: the next try waits, right password or not, and costs no hash.
    let response = login_with(&app, "alice", PASSWORD).await;
    assert_eq!(response.status(), 429);
    assert_eq!(json_of(&response)["error"], "too_many_attempts");
    let wait = retry_after(&response);
    assert!((1..=8).contains(&wait), "{wait}");
    tokio::time::sleep(Duration::from_secs(wait + 1)).await;
    assert_eq!(login_with(&app, "alice", PASSWORD).await.status(), 200);
    // Forgotten: five more wrong passwords are plain 401s again.
    for _ in 0..5 {
        assert_eq!(
            login_with(&app, "alice", "wrong-password-1").await.status(),
            401
        );
    }
    assert_ledger_balances(&app, "alice").await;
}

fn retry_after(response: &lambda_http::Response<lambda_http::Body>) -> u64 {
    response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn a_name_nobody_has_is_never_slowed_down_nor_given_an_item() {
    let app = fresh_app().await;
    for _ in 0..8 {
        assert_eq!(
            login_with(&app, "nobody", "wrong-password-1")
                .await
                .status(),
            401
        );
    }
    assert_eq!(item_counts(&app).await, [0, 0, 0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_simultaneous_chats_admit_exactly_the_per_minute_cap() {
    let app = Arc::new(app_with(|config| config.chats_per_minute = 20).await);
    let token = signed_up(&app, "alice").await;
    early_in_a_minute().await;
    let responses = simultaneous_chats(&app, &token, 50).await;
    let ok = responses.iter().filter(|r| r.status() == 200).count();
    let limited: Vec<_> = responses.iter().filter(|r| r.status() == 429).collect();
    assert_eq!((ok, limited.len()), (20, 30));
    for response in limited {
        assert_eq!(json_of(response)["error"], "rate_limited");
        assert!((1..=60).contains(&retry_after(response)));
    }
    assert_eq!(stored_chats(&app, "alice").await, 20);
    assert_eq!(stored_tokens(&app, "alice").await, Some(4000 - 20 * 100));
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cap_counts_completions_too_and_refusals_are_not_counted() {
    let app = app_with(|config| {
        config.chats_per_minute = 3;
        config.initial_tokens = 250;
    })
    .await;
    let token = signed_up(&app, "alice").await;
    let shared = sharing(&app);
    early_in_a_minute().await;
    let body = json!({"model": "dummy", "messages": [{"role": "user", "content": "hi"}]});
    // Two paid for, then the balance refuses: those refusals use no slot.
    let answers = simultaneous_completions(&shared, &token, &body, 6).await;
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        2,
        "{statuses:?}"
    );
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 4);
    for answer in answers.iter().filter(|a| a.status == 429) {
        assert_eq!(answer.json()["error"]["code"], "insufficient_quota");
    }
    // A grant later, the third slot is still free and the fourth is not.
    app.store
        .grant(
            &chat_core::domain::Username::parse("alice").unwrap(),
            500,
            "test",
            "limits-1",
            chat_core::deadline::Deadline::none(),
        )
        .await
        .unwrap();
    assert_eq!(complete(&shared, &token, body.clone()).await.status, 200);
    let over = complete(&shared, &token, body).await;
    assert_eq!(over.status, 429);
    assert_eq!(over.json()["error"]["code"], "rate_limit_exceeded");
    assert!(over.header("retry-after").is_some());
    assert_eq!(over.header("x-should-retry"), Some("true"));
    assert_eq!(stored_chats(&app, "alice").await, 3);
    assert_ledger_balances(&app, "alice").await;
}

async fn register_with(app: &App, username: &str, invite: Option<&str>) -> u16 {
    let mut body = json!({"username": username, "password": PASSWORD});
    if let Some(code) = invite {
        body["invite"] = json!(code);
    }
    register::handle(app, with_body(event("register"), &body.to_string()))
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn closed_registration_takes_nobody() {
    let app = app_with(|config| config.registration = Registration::Closed).await;
    let response = register(&app, "alice").await;
    assert_eq!(response.status(), 403);
    assert_eq!(json_of(&response)["error"], "registration_closed");
    assert_eq!(item_counts(&app).await, [0, 0, 0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_invite_registers_exactly_one_user() {
    let app = Arc::new(app_with(|config| config.registration = Registration::Invite).await);
    assert_eq!(register_with(&app, "alice", None).await, 403);
    assert_eq!(register_with(&app, "alice", Some("inv_nope")).await, 403);
    let code = app
        .store
        .create_invite("for the test", Timestamp::now())
        .await
        .unwrap();
    assert!(code.starts_with("inv_"));
    // Five at once with one code: one account.
    let tasks: Vec<_> = (0..5)
        .map(|i| {
            let (app, code) = (app.clone(), code.clone());
            tokio::spawn(async move { register_with(&app, &format!("user{i}"), Some(&code)).await })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    statuses.sort();
    assert_eq!(statuses, [201, 403, 403, 403, 403]);
    assert_eq!(register_with(&app, "late", Some(&code)).await, 403);
    // A taken name does not spend a code.
    let second = app.store.create_invite("", Timestamp::now()).await.unwrap();
    let mut registered = Vec::new();
    for i in 0..5 {
        let name = format!("user{i}");
        if stored_tokens(&app, &name).await.is_some() {
            registered.push(name);
        }
    }
    assert_eq!(registered.len(), 1);
    let registered = &registered[0];
    assert_eq!(register_with(&app, registered, Some(&second)).await, 409);
    assert_eq!(register_with(&app, "bob", Some(&second)).await, 201);
    assert_ledger_balances(&app, registered).await;
    assert_ledger_balances(&app, "bob").await;
}
