//! The operator tool, run as an operator runs it: the `chat-ops` binary
//! with the table names in its environment, against DynamoDB Local.

use std::process::Output;

use api_tests::local_api::user_command;
use api_tests::*;
use aws_sdk_dynamodb::types::AttributeValue;
use chat_core::local::{endpoint, fresh_app, repo_root};
use chat_core::App;

fn chat_ops(app: &App, args: &[&str]) -> Output {
    let status = user_command("cargo")
        .args(["build", "--quiet", "-p", "chat-ops"])
        .current_dir(repo_root())
        .status()
        .expect("running cargo build");
    assert!(status.success(), "cargo build -p chat-ops failed");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| repo_root().join("target"), std::path::PathBuf::from);
    let tables = app.store.tables();
    user_command(target.join("debug/chat-ops").to_str().unwrap())
        .args(args)
        .env("AWS_ENDPOINT_URL", endpoint())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "local")
        .env("AWS_SECRET_ACCESS_KEY", "local")
        .env("USERS_TABLE", &tables.users)
        .env("CREDENTIALS_TABLE", &tables.credentials)
        .env("CHATS_TABLE", &tables.chats)
        .output()
        .expect("running chat-ops")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

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
        .key("username", AttributeValue::S("carol".into()))
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
}
