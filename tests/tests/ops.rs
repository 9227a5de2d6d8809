//! The operator tool, run as an operator runs it: the `chat-ops` binary
//! with the table names in its environment, against DynamoDB Local, and
//! its effect on the API, through the handlers.

use api_tests::conflicts::{lost_attempts, twin_with_faults};
use api_tests::ops::{chat_ops, stderr, stdout};
use api_tests::*;
use aws_sdk_dynamodb::types::AttributeValue;
use chat_core::domain::Username;
use chat_core::store::{CHAT_ID, CREATED_AT, USERNAME};
use chat_core::ApiError;
use devtools::dynamodb_local::fresh_app;

#[tokio::test]
async fn audit_finds_every_ledger_sound_and_names_a_balance_that_is_not() {
    let app = fresh_app().await;
    for user in ["alice", "bob", "carol"] {
        let token = signed_up(&app, user).await;
        assert_eq!(chat_as(&app, &token, "hello").await.status(), 200);
    }
    let all = chat_ops(&app, &["audit"]);
    assert_eq!(all.status.code(), Some(0), "{}", stdout(&all));
    assert!(
        stdout(&all).contains("audited 3 accounts: 0 differ"),
        "{}",
        stdout(&all)
    );

    let one = chat_ops(&app, &["audit", "bob"]);
    assert_eq!(one.status.code(), Some(0));
    assert!(
        stdout(&one).contains("bob: balance 3900, ledger 3900 (2 entries, 0 open holds): ok"),
        "{}",
        stdout(&one)
    );

    // A balance changed behind the ledger's back.
    app.store
        .client()
        .update_item()
        .table_name(&app.store.tables().users)
        .key(USERNAME, AttributeValue::S("carol".into()))
        .update_expression("SET tokens = tokens + :one")
        .expression_attribute_values(":one", AttributeValue::N("1".into()))
        .send()
        .await
        .unwrap();
    let all = chat_ops(&app, &["audit"]);
    assert_eq!(all.status.code(), Some(1));
    let text = stdout(&all);
    assert!(text.contains("carol: balance 3901, ledger 3900"), "{text}");
    assert!(text.contains("DIFFERS by 1"), "{text}");
    assert!(text.contains("audited 3 accounts: 1 differ"), "{text}");
    assert!(
        !text.contains("alice"),
        "only the accounts that differ: {text}"
    );

    let nobody = chat_ops(&app, &["audit", "nobody"]);
    assert_eq!(nobody.status.code(), Some(2));

    // Put right again: `make test` audits every account a test left behind
    // (devtools' audit-tables), and this one was wrong on purpose.
    app.store
        .client()
        .update_item()
        .table_name(&app.store.tables().users)
        .key(USERNAME, AttributeValue::S("carol".into()))
        .update_expression("SET tokens = tokens - :one")
        .expression_attribute_values(":one", AttributeValue::N("1".into()))
        .send()
        .await
        .unwrap();
    assert_ledger_balances(&app, "carol").await;
}

#[tokio::test]
async fn a_grant_applies_once_per_operation_id_and_never_below_zero() {
    let app = fresh_app().await;
    signed_up(&app, "alice").await;
    let grant = |args: &[&str]| {
        let mut all = vec!["grant", "alice"];
        all.extend_from_slice(args);
        chat_ops(&app, &all)
    };
    let first = grant(&["500", "--reason", "top-up", "--op-id", "t1"]);
    assert_eq!(first.status.code(), Some(0), "{}", stdout(&first));
    assert_eq!(stored_tokens(&app, "alice").await, Some(4500));
    // Retried: applied once.
    let again = grant(&["500", "--reason", "top-up", "--op-id", "t1"]);
    assert_eq!(again.status.code(), Some(0));
    assert!(
        stdout(&again).contains("applied before"),
        "{}",
        stdout(&again)
    );
    assert_eq!(stored_tokens(&app, "alice").await, Some(4500));
    // The same id for another amount is a mistake, not a second grant.
    let other = grant(&["600", "--reason", "top-up", "--op-id", "t1"]);
    assert_eq!(other.status.code(), Some(1));
    assert_eq!(stored_tokens(&app, "alice").await, Some(4500));
    // So is the same id for another user, even for the same amount: an id
    // names one operation, across every user.
    signed_up(&app, "bob").await;
    let for_bob = chat_ops(
        &app,
        &["grant", "bob", "500", "--reason", "top-up", "--op-id", "t1"],
    );
    assert_eq!(for_bob.status.code(), Some(1));
    let said = String::from_utf8_lossy(&for_bob.stderr);
    assert!(said.contains("a grant of 500 to alice"), "{said}");
    assert_eq!(stored_tokens(&app, "bob").await, Some(4000));
    assert_ledger_balances(&app, "bob").await;
    // Taken back down to zero, and not below.
    let all = grant(&["-4500", "--reason", "refund", "--op-id", "t2"]);
    assert_eq!(all.status.code(), Some(0), "{}", stdout(&all));
    let more = grant(&["-1", "--reason", "refund", "--op-id", "t3"]);
    assert_eq!(more.status.code(), Some(1));
    assert_eq!(stored_tokens(&app, "alice").await, Some(0));
    assert_eq!(
        chat_ops(&app, &["grant", "nobody", "1", "--reason", "x"])
            .status
            .code(),
        Some(2)
    );

    let shown = chat_ops(&app, &["show", "alice"]);
    let text = stdout(&shown);
    assert!(text.contains("balance:  0"), "{text}");
    assert!(text.contains("-4500  grant"), "{text}");
    assert!(text.contains("+500  grant"), "{text}");
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn revoke_ends_every_session_and_key_at_once() {
    let app = fresh_app().await;
    let first = signed_up(&app, "alice").await;
    let second = logged_in(&app, "alice").await;
    let created = keys::handle(&app, with_auth(event("keys"), &first))
        .await
        .unwrap();
    let key = json_of(&created)["key"].as_str().unwrap().to_owned();
    assert_eq!(chat_as(&app, &key, "with the key").await.status(), 200);
    let shown = chat_ops(&app, &["show", "alice"]);
    assert!(stdout(&shown).contains("api keys: 1"), "{}", stdout(&shown));
    let [users, credentials, chats] = item_counts(&app).await;
    let revoked = chat_ops(&app, &["revoke", "alice"]);
    assert_eq!(revoked.status.code(), Some(0));
    // The key's details go with it: one item fewer.
    assert_eq!(item_counts(&app).await, [users, credentials, chats - 1]);
    assert!(
        stdout(&revoked).contains("ended 3 sessions and API keys"),
        "{}",
        stdout(&revoked)
    );
    let shown = chat_ops(&app, &["show", "alice"]);
    assert!(stdout(&shown).contains("api keys: 0"), "{}", stdout(&shown));
    for token in [&first, &second, &key] {
        assert_eq!(chat_as(&app, token, "hi").await.status(), 401);
        assert_eq!(balance_as(&app, token).await.status(), 401);
    }
    assert_eq!(stored_tokens(&app, "alice").await, Some(3900));
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn the_operators_store_writes_on_a_store_that_keeps_refusing_are_errors_not_no_such_account()
{
    let app = fresh_app().await;
    let token = signed_up(&app, "alice").await;
    let (throttled, faults) = twin_with_faults(&app, "UpdateItem");
    let alice = Username::parse("alice").unwrap();
    let unavailable = |result: Result<(), ApiError>| {
        assert!(
            matches!(result, Err(ApiError::Unavailable(_))),
            "{result:?}"
        );
    };
    faults.arm_throttled(lost_attempts());
    unavailable(throttled.store.end_all_sessions(&alice).await.map(|_| ()));
    for disabled in [true, false] {
        faults.arm_throttled(lost_attempts());
        unavailable(
            throttled
                .store
                .set_disabled(&alice, disabled)
                .await
                .map(|_| ()),
        );
    }
    assert_eq!(faults.sent(), 3 * lost_attempts());
    // Nothing was ended or disabled.
    assert_eq!(chat_as(&app, &token, "still here").await.status(), 200);
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn invite_prints_single_use_codes_that_register_once() {
    let mut app = fresh_app().await;
    app.config.registration = chat_core::config::Registration::Invite;
    let made = chat_ops(&app, &["invite", "--count", "2", "--note", "beta"]);
    assert_eq!(made.status.code(), Some(0));
    let codes: Vec<String> = stdout(&made).lines().map(str::to_owned).collect();
    assert_eq!(codes.len(), 2);
    assert!(codes.iter().all(|c| c.starts_with("inv_")));
    for (name, code, status) in [
        ("alice", &codes[0], 201),
        ("bob", &codes[0], 403),
        ("bob", &codes[1], 201),
    ] {
        let body = serde_json::json!({"username": name, "password": PASSWORD, "invite": code});
        let response = register::handle(&app, with_body(event("register"), &body.to_string()))
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{name}");
    }
    assert_ledger_balances(&app, "alice").await;
    assert_ledger_balances(&app, "bob").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_disabled_user_cannot_log_in_chat_or_read_from_the_next_request() {
    let app = std::sync::Arc::new(fresh_app().await);
    let token = signed_up(&app, "alice").await;
    // Chats in flight while the operator disables: each is charged and
    // saved or refused whole, and none after the disable goes through.
    let burst = {
        let (app, token) = (app.clone(), token.clone());
        tokio::spawn(async move { simultaneous_chats(&app, &token, 20).await })
    };
    let disabled = chat_ops(&app, &["disable", "alice"]);
    assert_eq!(disabled.status.code(), Some(0), "{}", stdout(&disabled));
    let responses = burst.await.unwrap();
    let charged = responses.iter().filter(|r| r.status() == 200).count();
    assert!(responses
        .iter()
        .all(|r| [200, 403].contains(&r.status().as_u16())));

    let refused = chat_as(&app, &token, "after").await;
    assert_eq!(refused.status(), 403);
    assert_eq!(json_of(&refused)["error"], "account_disabled");
    assert_eq!(balance_as(&app, &token).await.status(), 403);
    let page = history::handle(&app, with_auth(event("history"), &token)).await;
    assert_eq!(page.unwrap().status(), 403);
    assert_eq!(login_with(&app, "alice", PASSWORD).await.status(), 403);
    let shown = stdout(&chat_ops(&app, &["show", "alice"]));
    assert!(shown.contains("state:    disabled"), "{shown}");

    assert_eq!(chat_ops(&app, &["enable", "alice"]).status.code(), Some(0));
    assert_eq!(chat_as(&app, &token, "back").await.status(), 200);
    // No such account: said so, and nothing is made.
    let counts = item_counts(&app).await;
    for command in ["disable", "enable"] {
        let none = chat_ops(&app, &[command, "nobody"]);
        assert_eq!(none.status.code(), Some(2), "{}", stderr(&none));
        assert!(
            stderr(&none).contains("no account \"nobody\""),
            "{}",
            stderr(&none)
        );
    }
    assert_eq!(item_counts(&app).await, counts);
    assert_eq!(
        stored_tokens(&app, "alice").await,
        Some(4000 - 100 * (charged as i64 + 1))
    );
    assert_ledger_balances(&app, "alice").await;
}

/// An item as the users table held it before the account item: the hash
/// beside the balance.
async fn put_legacy_user(app: &chat_core::App, name: &str, tokens: i64) {
    let hash = chat_core::passwords::hash(
        chat_core::domain::Password::parse(PASSWORD.to_owned()).unwrap(),
    )
    .await
    .unwrap();
    let s = |v: &str| AttributeValue::S(v.to_owned());
    app.store
        .client()
        .put_item()
        .table_name(&app.store.tables().users)
        .item(USERNAME, s(name))
        .item("user_id", s("0190a1b2-0000-7000-8000-000000000000"))
        .item("password_hash", s(&hash))
        .item("tokens", AttributeValue::N(tokens.to_string()))
        .item(CREATED_AT, s("2026-11-20T10:00:00.000Z"))
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn migrate_brings_a_stack_from_before_the_account_item_up_and_may_run_again() {
    let app = fresh_app().await;
    signed_up(&app, "alice").await;
    // olduser: registered before the account item, one chat since (a chat
    // of then: a cost, no ledger amount).
    put_legacy_user(&app, "olduser", 3900).await;
    let s = |v: &str| AttributeValue::S(v.to_owned());
    app.store
        .client()
        .put_item()
        .table_name(&app.store.tables().chats)
        .item(USERNAME, s("olduser"))
        .item(CHAT_ID, s("0190a1b2-0000-7000-8000-000000000001"))
        .item("message", s("hello from before"))
        .item("response", s("AI response"))
        .item("cost", AttributeValue::N("100".into()))
        .item(CREATED_AT, s("2026-11-20T10:05:00.000Z"))
        .send()
        .await
        .unwrap();
    // Before: the name has no credentials, so no login gets in.
    assert_eq!(login_with(&app, "olduser", PASSWORD).await.status(), 401);

    let run = chat_ops(&app, &["migrate"]);
    assert_eq!(run.status.code(), Some(0), "{}", stdout(&run));
    assert!(
        stdout(&run).contains(
            "migrated 2 users: 1 password hashes moved to the credentials table, 1 opening ledger entries, 0 left"
        ),
        "{}",
        stdout(&run)
    );
    // The hash left the users table; the user logs in, keeps the balance
    // and the chat of before, and the ledger balances.
    let account = app
        .store
        .client()
        .get_item()
        .table_name(&app.store.tables().users)
        .key(USERNAME, s("olduser"))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert!(!account.contains_key("password_hash"));
    let token = logged_in(&app, "olduser").await;
    assert_eq!(stored_tokens(&app, "olduser").await, Some(3900));
    assert_eq!(chat_as(&app, &token, "hello again").await.status(), 200);
    assert_eq!(
        saved_messages(&app, "olduser").await.len(),
        2,
        "the chat of before is still there"
    );
    assert_ledger_balances(&app, "olduser").await;
    assert_ledger_balances(&app, "alice").await;

    // Again: nothing left to do.
    let again = chat_ops(&app, &["migrate"]);
    assert_eq!(again.status.code(), Some(0));
    assert!(
        stdout(&again).contains("0 password hashes moved to the credentials table, 0 opening"),
        "{}",
        stdout(&again)
    );
    assert_ledger_balances(&app, "olduser").await;

    // A legacy item whose name has credentials already is left alone, and
    // said so.
    put_legacy_user(&app, "alice", 10).await;
    let clash = chat_ops(&app, &["migrate"]);
    assert_eq!(clash.status.code(), Some(1));
    assert!(
        stdout(&clash).contains("alice: left as it is: its name has credentials already"),
        "{}",
        stdout(&clash)
    );
    // That item was made over alice's account on purpose, and is no account
    // to audit: gone before `make test` audits every account left behind.
    app.store
        .client()
        .delete_item()
        .table_name(&app.store.tables().users)
        .key(USERNAME, AttributeValue::S("alice".into()))
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn usage_reads_one_user_or_every_account_by_day_and_adds_up_to_the_ledger() {
    let app = fresh_app().await;
    for user in ["alice", "bob"] {
        let token = signed_up(&app, user).await;
        assert_eq!(chat_as(&app, &token, "hello").await.status(), 200);
    }
    let day = chat_core::clock::Timestamp::now().day();
    let one = chat_ops(&app, &["usage", "bob"]);
    assert_eq!(one.status.code(), Some(0), "{}", stdout(&one));
    let text = stdout(&one);
    assert!(
        text.contains(&format!(
            "bob  {day}  charged 100  granted 4000  net 3900  entries 2"
        )),
        "{text}"
    );

    let all = chat_ops(&app, &["usage", "--csv"]);
    assert_eq!(all.status.code(), Some(0));
    let text = stdout(&all);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "user,group,charged,granted,net,entries");
    assert!(
        lines.contains(&format!("alice,{day},100,4000,3900,2").as_str()),
        "{text}"
    );
    assert!(
        lines.contains(&format!("bob,{day},100,4000,3900,2").as_str()),
        "{text}"
    );
    assert_eq!(
        lines.len(),
        3,
        "the rows alone, the total on stderr: {text}"
    );

    let by_model = chat_ops(&app, &["usage", "alice", "--by", "model"]);
    assert!(
        stdout(&by_model).contains("alice  dummy  charged 100"),
        "{}",
        stdout(&by_model)
    );
    let bad = chat_ops(&app, &["usage", "alice", "--from", "yesterday"]);
    assert_eq!(bad.status.code(), Some(2));
    assert_eq!(chat_ops(&app, &["usage", "nobody"]).status.code(), Some(2));
    assert_ledger_balances(&app, "alice").await;
    assert_ledger_balances(&app, "bob").await;
}

#[tokio::test]
async fn alert_sets_shows_and_clears_a_users_threshold_and_refuses_bad_input() {
    let app = fresh_app().await;
    let session = signed_up(&app, "alice").await;
    let set = chat_ops(&app, &["alert", "alice", "500"]);
    assert_eq!(set.status.code(), Some(0), "{}", stderr(&set));
    let shown = stdout(&chat_ops(&app, &["show", "alice"]));
    assert!(shown.contains("alert:    below 500"), "{shown}");
    // The user reads what the operator set.
    assert_eq!(
        json_of(&balance_as(&app, &session).await)["alert_below"],
        500
    );

    for bad in ["-1", "many", "1000000000001"] {
        let refused = chat_ops(&app, &["alert", "alice", bad]);
        assert_ne!(refused.status.code(), Some(0), "{bad}");
    }
    let shown = stdout(&chat_ops(&app, &["show", "alice"]));
    assert!(
        shown.contains("alert:    below 500"),
        "bad input changed it: {shown}"
    );
    let nobody = chat_ops(&app, &["alert", "nobody", "5"]);
    assert_ne!(nobody.status.code(), Some(0));

    let off = chat_ops(&app, &["alert", "alice", "off"]);
    assert_eq!(off.status.code(), Some(0), "{}", stderr(&off));
    let shown = stdout(&chat_ops(&app, &["show", "alice"]));
    assert!(shown.contains("alert:    none"), "{shown}");
}
