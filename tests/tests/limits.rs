//! Limits against abuse, on DynamoDB Local: failed logins slow the next
//! ones down (and a success forgets them), for a name nobody has exactly as
//! for a real one, and guesses sent at once get one password check per
//! slot; one client address is capped in password checks and sign-ups
//! without touching any other; each user's chats per minute are capped
//! across instances with the exact count admitted; and registration can be
//! closed or need an invite (checked before the name). Every refusal
//! changes nothing.

use std::sync::Arc;
use std::time::Duration;

use api_tests::calls::counted_app;
use api_tests::completion::{complete, simultaneous_completions};
use api_tests::*;
use chat_core::clock::Timestamp;
use chat_core::config::{Registration, SourceLimits};
use chat_core::deadline::Deadline;
use chat_core::domain::{LoginName, Source};
use chat_core::store::FREE_FAILURES;
use chat_core::{ApiError, App, Config};
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

/// What a login answered, as a client sees it: status, error code and how
/// long to wait.
fn answer(response: &lambda_http::Response<lambda_http::Body>) -> (u16, String, Option<u64>) {
    let code = json_of(response)["error"].as_str().unwrap_or("").to_owned();
    let wait = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    (response.status().as_u16(), code, wait)
}

#[tokio::test]
async fn wrong_passwords_answer_the_same_step_by_step_for_a_real_name_and_an_unknown_one() {
    let (app, calls) = counted_app().await;
    assert_eq!(register(&app, "alice").await.status(), 201);
    calls.take();
    // Side by side, so each step of one name is as old as the other's.
    let mut seen = Vec::new();
    for step in 1..=8 {
        let mut step_answers = Vec::new();
        for name in ["alice", "nobody"] {
            let response = login_with(&app, name, "wrong-password-1").await;
            step_answers.push((answer(&response), calls.take()));
        }
        assert_eq!(step_answers[0], step_answers[1], "step {step}");
        seen.push(step_answers.remove(0));
    }
    // Five free failures, each a read and the slot's write; then a wait,
    // told before any password check, costing the read alone.
    let free = (
        (401, "invalid_credentials".to_owned(), None),
        vec!["BatchGetItem".to_owned(), "TransactWriteItems".to_owned()],
    );
    assert_eq!(seen[..5], vec![free; 5]);
    for (step, ((status, code, wait), sent)) in seen[5..].iter().enumerate() {
        assert_eq!(
            (*status, code.as_str(), *sent == ["BatchGetItem"]),
            (429, "too_many_attempts", true),
            "step {}",
            step + 6
        );
        assert_eq!(*wait, Some(1));
    }
    // Both names hold the same kind of item: a count, not an account.
    assert_eq!(item_counts(&app).await, [1, 3, 1]);
    // Slowed down for most of a minute: the same again, right password or
    // not.
    assert_eq!(register(&app, "bob").await.status(), 201);
    for name in ["bob", "nobody-else"] {
        slow_down(&app, name).await;
    }
    let real = login_with(&app, "bob", PASSWORD).await;
    let unknown = login_with(&app, "nobody-else", PASSWORD).await;
    let (real, unknown) = (answer(&real), answer(&unknown));
    assert_eq!((real.0, real.1.as_str()), (429, "too_many_attempts"));
    assert_eq!((unknown.0, unknown.1.as_str()), (429, "too_many_attempts"));
    assert!(real.2.unwrap().abs_diff(unknown.2.unwrap()) <= 1);
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_name_or_password_no_account_can_have_is_counted_and_answered_as_any_wrong_one() {
    let app = fresh_app().await;
    assert_eq!(register(&app, "alice").await.status(), 201);
    // A password shorter than any rule took, for a real and an unknown
    // name; a name with a space in it, which no rule took.
    let tries = [
        ("alice", "wrong"),
        ("nobody", "wrong"),
        ("no such user", "wrong-password-1"),
    ];
    for step in 1..=7 {
        let mut answers = Vec::new();
        for (name, password) in tries {
            answers.push(answer(&login_with(&app, name, password).await));
        }
        assert!(
            answers.iter().all(|a| *a == answers[0]),
            "step {step}: {answers:?}"
        );
        let status = if step <= 5 { 401 } else { 429 };
        assert_eq!(answers[0].0, status, "step {step}");
    }
    // An impossible name is kept as a digest, never as sent.
    let credentials = app
        .store
        .client()
        .scan()
        .table_name(&app.store.tables().credentials)
        .send()
        .await
        .unwrap();
    let keys: Vec<&str> = credentials
        .items()
        .iter()
        .map(|item| item["username"].as_s().unwrap().as_str())
        .collect();
    assert!(keys.iter().all(|key| !key.contains(' ')), "{keys:?}");
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn guesses_sent_at_once_take_the_free_slots_and_no_more() {
    // The store's own clock stands still here, so the count is exact
    // however slowly the machine answers: five free slots, then a wait.
    let app = Arc::new(fresh_app().await);
    assert_eq!(register(&app, "alice").await.status(), 201);
    let now = Timestamp::now();
    for name in ["alice", "nobody"] {
        let username = LoginName::parse(name);
        let tasks: Vec<_> = (0..12)
            .map(|_| {
                let (app, username) = (app.clone(), username.clone());
                tokio::spawn(async move {
                    app.store
                        .begin_login(&username, &Source::unknown(), now, Deadline::none())
                        .await
                })
            })
            .collect();
        let mut slots = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(_) => slots += 1,
                Err(ApiError::TooManyAttempts { retry_after }) => assert_eq!(retry_after, 1),
                Err(other) => panic!("{other:?}"),
            }
        }
        assert_eq!(slots, FREE_FAILURES, "{name}");
    }
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn simultaneous_guesses_on_a_slowed_name_get_one_password_check_between_them() {
    let app = Arc::new(fresh_app().await);
    assert_eq!(register(&app, "alice").await.status(), 201);
    // Ten failures, the last 40 s ago: its 32 s wait is over, so exactly one
    // slot is free, and taking it makes the next wait a minute. (Guesses,
    // not the password: a login that gets in forgets the failures, and the
    // tries still in flight would then each get a slot of their own, as the
    // owner's should.)
    let long_ago = Timestamp::now().unix_millis() - 40_000;
    for name in ["alice", "nobody"] {
        past_failures(
            &app,
            name,
            10,
            Timestamp::from_unix_millis(long_ago).unwrap(),
        )
        .await;
        let tasks: Vec<_> = (0..12)
            .map(|_| {
                let app = app.clone();
                tokio::spawn(
                    async move { answer(&login_with(&app, name, "wrong-password-1").await) },
                )
            })
            .collect();
        let mut statuses = Vec::new();
        for task in tasks {
            let (status, code, wait) = task.await.unwrap();
            if status == 429 {
                assert_eq!(code, "too_many_attempts");
                assert!((50..=60).contains(&wait.unwrap()), "{wait:?}");
            }
            statuses.push(status);
        }
        statuses.sort();
        let mut expected = vec![401];
        expected.extend([429; 11]);
        assert_eq!(statuses, expected, "{name}");
    }
    // The owner now waits too, right password or not.
    assert_eq!(login_with(&app, "alice", PASSWORD).await.status(), 429);
    assert_ledger_balances(&app, "alice").await;
}

/// Waits out the end of the current hour if it is near, so a test's
/// sign-ups all fall in one hour's count.
async fn early_in_an_hour() {
    let into = Timestamp::now().unix_seconds().rem_euclid(3600);
    if into > 3590 {
        tokio::time::sleep(Duration::from_secs((3601 - into) as u64)).await;
    }
}

fn capped(limits: SourceLimits) -> impl FnOnce(&mut Config) {
    move |config| config.source_limits = limits
}

#[tokio::test]
async fn one_address_at_its_login_cap_leaves_other_addresses_and_the_names_it_tried_alone() {
    let app = app_with(capped(SourceLimits {
        login_checks_per_minute: 3,
        registrations_per_hour: 0,
    }))
    .await;
    let _ = signed_up(&app, "alice").await;
    let _ = signed_up(&app, "carol").await;
    let (guesser, others) = ("203.0.113.7", "198.51.100.23");
    early_in_a_minute().await;
    // Three checks from the guesser, over three names, then no more.
    for name in ["alice", "bob", "dave"] {
        let response = login_from(&app, guesser, name, "wrong-password-1").await;
        assert_eq!(response.status(), 401);
    }
    // Refused before any check, and counted against none of the names.
    let before = item_counts(&app).await;
    for name in ["carol", "erin", "alice"] {
        let response = login_from(&app, guesser, name, PASSWORD).await;
        let (status, code, wait) = answer(&response);
        assert_eq!((status, code.as_str()), (429, "ip_rate_limited"), "{name}");
        assert!((1..=60).contains(&wait.unwrap()));
    }
    assert_eq!(item_counts(&app).await, before, "nothing counted");
    // Any other address logs in as usual.
    for name in ["carol", "alice"] {
        let response = login_from(&app, others, name, PASSWORD).await;
        assert_eq!(response.status(), 200, "{name}");
    }
    assert_ledger_balances(&app, "alice").await;
    assert_ledger_balances(&app, "carol").await;
}

async fn register_from(app: &App, ip: &str, username: &str) -> u16 {
    register::handle(
        app,
        with_body(event_from("register", ip), &credentials(username, PASSWORD)),
    )
    .await
    .unwrap()
    .status()
    .as_u16()
}

#[tokio::test]
async fn one_address_makes_at_most_its_sign_ups_an_hour_and_a_refusal_creates_nothing() {
    let app = app_with(capped(SourceLimits {
        login_checks_per_minute: 0,
        registrations_per_hour: 2,
    }))
    .await;
    early_in_an_hour().await;
    let farm = "203.0.113.7";
    assert_eq!(register_from(&app, farm, "user1").await, 201);
    assert_eq!(register_from(&app, farm, "user2").await, 201);
    let before = item_counts(&app).await;
    let response = register::handle(
        &app,
        with_body(
            event_from("register", farm),
            &credentials("user3", PASSWORD),
        ),
    )
    .await
    .unwrap();
    let (status, code, wait) = answer(&response);
    assert_eq!((status, code.as_str()), (429, "ip_rate_limited"));
    assert!((1..=3600).contains(&wait.unwrap()));
    assert_eq!(item_counts(&app).await, before, "nothing created");
    // A taken name is refused for its own reason, and another address
    // signs up as usual.
    assert_eq!(register_from(&app, "198.51.100.23", "user3").await, 201);
    assert_eq!(register_from(&app, "198.51.100.23", "user1").await, 409);
    for user in ["user1", "user2", "user3"] {
        assert_ledger_balances(&app, user).await;
    }
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
    // The code is checked first: without a valid one, a taken name is
    // answered as a free one, so a made-up code tells nobody which names
    // exist.
    for name in [registered.as_str(), "nobody"] {
        assert_eq!(
            register_with(&app, name, Some("inv_AAAAAAAAAAAAAAAAAAAAAA")).await,
            403,
            "{name}"
        );
    }
    assert_eq!(register_with(&app, registered, Some(&second)).await, 409);
    assert_eq!(register_with(&app, "bob", Some(&second)).await, 201);
    assert_ledger_balances(&app, registered).await;
    assert_ledger_balances(&app, "bob").await;
}

/// `alice`'s per-minute counters as stored: (minute, count), sorted.
async fn minute_counters(app: &App) -> Option<Vec<(i64, i64)>> {
    let account = stored_account(app, "alice").await;
    let map = account.get("chat_minutes")?.as_m().unwrap();
    let mut counters: Vec<(i64, i64)> = map
        .iter()
        .map(|(minute, count)| {
            (
                minute.parse().unwrap(),
                count.as_n().unwrap().parse().unwrap(),
            )
        })
        .collect();
    counters.sort();
    Some(counters)
}

async fn set_counters(app: &App, value: Option<aws_sdk_dynamodb::types::AttributeValue>) {
    let update = app
        .store
        .client()
        .update_item()
        .table_name(&app.store.tables().users)
        .key(
            "username",
            aws_sdk_dynamodb::types::AttributeValue::S("alice".into()),
        );
    let update = match value {
        Some(map) => update
            .update_expression("SET chat_minutes = :map")
            .expression_attribute_values(":map", map),
        None => update.update_expression("REMOVE chat_minutes"),
    };
    update.send().await.unwrap();
}

#[tokio::test]
async fn with_the_cap_off_chats_are_neither_counted_nor_refused_for_it() {
    let app = app_with(|config| config.chats_per_minute = 0).await;
    let token = signed_up(&app, "alice").await;
    for i in 0..3 {
        let response = chat_as(&app, &token, &format!("chat {i}")).await;
        assert_eq!(response.status(), 200, "{}", json_of(&response));
    }
    // Not a counter written: a cap that is off costs nothing.
    assert_eq!(minute_counters(&app).await, Some(vec![]));
    assert_eq!(stored_tokens(&app, "alice").await, Some(3700));
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn with_the_cap_on_a_flat_chat_is_two_items_and_the_counters_stay_bounded() {
    let (app, calls) = counted_app().await;
    assert!(app.config.chats_per_minute > 0, "the cap is on by default");
    let token = signed_up(&app, "alice").await;
    early_in_a_minute().await;
    let minute = Timestamp::now().unix_seconds().div_euclid(60);
    calls.take();
    assert_eq!(chat_as(&app, &token, "one").await.status(), 200);
    let accesses = calls.take_accesses();
    let items: Vec<(&str, &str)> = accesses
        .iter()
        .map(|a| (a.action.as_str(), a.table.as_str()))
        .collect();
    assert_eq!(
        items,
        [
            ("dynamodb:PutItem", app.store.tables().chats.as_str()),
            ("dynamodb:UpdateItem", app.store.tables().users.as_str())
        ],
        "one transaction of two items: the account and the chat"
    );
    assert_eq!(minute_counters(&app).await.unwrap(), [(minute, 1)]);

    // Counters an idle gap left behind, past the room: the next chat
    // rewrites the map to this minute's counter alone, counting itself.
    let old = |m: i64| {
        (
            m.to_string(),
            aws_sdk_dynamodb::types::AttributeValue::N("1".into()),
        )
    };
    let crowded = [
        old(minute - 9),
        old(minute - 5),
        old(minute),
        old(minute - 3),
    ];
    set_counters(
        &app,
        Some(aws_sdk_dynamodb::types::AttributeValue::M(
            crowded.into_iter().collect(),
        )),
    )
    .await;
    assert_eq!(chat_as(&app, &token, "two").await.status(), 200);
    assert_eq!(minute_counters(&app).await.unwrap(), [(minute, 2)]);

    // An account from before the counters gets its map the same way.
    set_counters(&app, None).await;
    assert_eq!(chat_as(&app, &token, "three").await.status(), 200);
    assert_eq!(minute_counters(&app).await.unwrap(), [(minute, 1)]);
    assert_eq!(stored_chats(&app, "alice").await, 3);
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crowded_counter_map_under_a_burst_still_admits_exactly_the_cap() {
    let app = Arc::new(app_with(|config| config.chats_per_minute = 5).await);
    let token = signed_up(&app, "alice").await;
    early_in_a_minute().await;
    let minute = Timestamp::now().unix_seconds().div_euclid(60);
    let old = |m: i64| {
        (
            m.to_string(),
            aws_sdk_dynamodb::types::AttributeValue::N("1".into()),
        )
    };
    set_counters(
        &app,
        Some(aws_sdk_dynamodb::types::AttributeValue::M(
            [old(minute - 30), old(minute - 20), old(minute - 10)]
                .into_iter()
                .collect(),
        )),
    )
    .await;
    let responses = simultaneous_chats(&app, &token, 12).await;
    let ok = responses.iter().filter(|r| r.status() == 200).count();
    let limited = responses.iter().filter(|r| r.status() == 429).count();
    assert_eq!((ok, limited), (5, 7));
    assert_eq!(minute_counters(&app).await.unwrap(), [(minute, 5)]);
    assert_eq!(stored_chats(&app, "alice").await, 5);
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_refusal_names_the_balance_before_the_cap_and_a_flat_chat_never_the_open_calls() {
    let app = app_with(|config| {
        config.chats_per_minute = 1;
        config.initial_tokens = 150;
    })
    .await;
    let alice = signed_up(&app, "alice").await;
    let bob = signed_up(&app, "bob").await;
    // Bob has exactly one more chat's worth after his first.
    app.store
        .grant(
            &chat_core::domain::Username::parse("bob").unwrap(),
            50,
            "test",
            "limits-2",
            chat_core::deadline::Deadline::none(),
        )
        .await
        .unwrap();
    // Alice has made paid calls: her account counts its open ones (none
    // now), which only a paid call's hold is refused for.
    set_open_calls(&app, "alice", 0).await;
    early_in_a_minute().await;
    for token in [&alice, &bob] {
        assert_eq!(chat_as(&app, token, "first").await.status(), 200);
    }
    // Both are over the minute's cap now. Alice is short too: the balance
    // is what she can do something about, so it is what she is told.
    let short = chat_as(&app, &alice, "second").await;
    assert_eq!(short.status(), 402, "{}", json_of(&short));
    assert_eq!(json_of(&short)["error"], "insufficient_tokens");
    // Bob's balance covers a chat exactly: the cap is what refused him.
    let capped = chat_as(&app, &bob, "second").await;
    assert_eq!(capped.status(), 429, "{}", json_of(&capped));
    assert_eq!(json_of(&capped)["error"], "rate_limited");
    assert_eq!(stored_tokens(&app, "alice").await, Some(50));
    assert_eq!(stored_tokens(&app, "bob").await, Some(100));
    assert_ledger_balances(&app, "alice").await;
    assert_ledger_balances(&app, "bob").await;
}
