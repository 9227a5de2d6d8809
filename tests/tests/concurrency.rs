//! Many simultaneous requests for one user: exact counts afterwards, never
//! an overdraft, a lost update, or a charge without its chat.

use api_tests::*;
use devtools::dynamodb_local::fresh_app;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_simultaneous_chats_on_4000_tokens_give_exactly_40_replies() {
    let app = Arc::new(fresh_app().await);
    let token = signed_up(&app, "alice").await;
    let mut statuses = Vec::new();
    for response in simultaneous_chats(&app, &token, 100).await {
        let status = response.status().as_u16();
        if status == 402 {
            assert_eq!(json_of(&response)["error"], "insufficient_tokens");
        }
        statuses.push(status);
    }
    let ok = statuses.iter().filter(|s| **s == 200).count();
    let refused = statuses.iter().filter(|s| **s == 402).count();
    assert_eq!((ok, refused), (40, 60), "statuses: {statuses:?}");
    assert_eq!(stored_tokens(&app, "alice").await, Some(0));
    assert_eq!(stored_chats(&app, "alice").await, 40);
    assert_eq!(
        json_of(&balance_as(&app, &token).await),
        serde_json::json!({"tokens": 0})
    );
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn balance_reads_during_a_burst_of_chats_never_fail_or_go_negative() {
    let app = Arc::new(fresh_app().await);
    let token = Arc::new(signed_up(&app, "alice").await);
    let mut tasks = Vec::new();
    for i in 0..60 {
        let (app, token) = (app.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            let response = if i % 2 == 0 {
                chat_as(&app, &token, "hi").await
            } else {
                balance_as(&app, &token).await
            };
            (i % 2 == 0, response.status().as_u16(), json_of(&response))
        }));
    }
    for task in tasks {
        let (is_chat, status, body) = task.await.unwrap();
        assert_eq!(status, 200, "{body}");
        if !is_chat {
            let tokens = body["tokens"].as_i64().unwrap();
            assert!(
                (1000..=4000).contains(&tokens) && tokens % 100 == 0,
                "{body}"
            );
        }
    }
    assert_eq!(stored_tokens(&app, "alice").await, Some(1000));
    assert_eq!(stored_chats(&app, "alice").await, 30);
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_simultaneous_registrations_of_one_name_make_one_user() {
    let app = Arc::new(fresh_app().await);
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { register(&app, "alice").await })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap().status().as_u16());
    }
    statuses.sort();
    let mut expected = vec![201];
    expected.extend([409; 19]);
    assert_eq!(statuses, expected);
    assert_eq!(
        item_counts(&app).await,
        [1, 1, 1],
        "one account, one credentials item, one grant entry"
    );
    assert_eq!(stored_tokens(&app, "alice").await, Some(4000));
    assert_ledger_balances(&app, "alice").await;
}
