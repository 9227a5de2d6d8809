//! `chat-ops` run as an operator runs it: the binary, with the table names
//! of a test's own tables in its environment, against DynamoDB Local.

use std::process::Output;

use chat_core::App;
use devtools::dynamodb_local::{endpoint, repo_root};

use crate::local_api::user_command;

/// Builds `chat-ops` (if it is not built yet) and runs it on `app`'s tables
/// with `args`; `env` adds to its environment.
pub fn chat_ops_with(app: &App, args: &[&str], env: &[(&str, &str)]) -> Output {
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
        .envs(env.iter().copied())
        .output()
        .expect("running chat-ops")
}

/// [`chat_ops_with`] in the tables' own environment alone.
pub fn chat_ops(app: &App, args: &[&str]) -> Output {
    chat_ops_with(app, args, &[])
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
