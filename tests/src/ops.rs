//! `chat-ops` run as an operator runs it: the binary, with the table names
//! of a test's own tables in its environment, against DynamoDB Local.

use std::io::Read;
use std::process::{Output, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chat_core::App;
use devtools::dynamodb_local::{endpoint, repo_root};

use crate::local_api::user_command;

/// How long one run of `chat-ops` may take: a second or two against
/// DynamoDB Local, so a run past this is a loop that never ends (a scan
/// whose every page names a next one), and the test fails rather than
/// hangs.
const RUN_LIMIT: Duration = Duration::from_secs(60);

/// Builds `chat-ops` (if it is not built yet) and runs it on `app`'s tables
/// with `args`; `env` adds to its environment. Panics if it runs past
/// [`RUN_LIMIT`].
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
    let mut child = user_command(target.join("debug/chat-ops").to_str().unwrap())
        .args(args)
        .env("AWS_ENDPOINT_URL", endpoint())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "local")
        .env("AWS_SECRET_ACCESS_KEY", "local")
        .env("USERS_TABLE", &tables.users)
        .env("CREDENTIALS_TABLE", &tables.credentials)
        .env("CHATS_TABLE", &tables.chats)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running chat-ops");
    // Read as it runs, so a full pipe never stalls it.
    let stdout = read_all(child.stdout.take().expect("piped stdout"));
    let stderr = read_all(child.stderr.take().expect("piped stderr"));
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(e) => {
                child.kill().ok();
                panic!("waiting for chat-ops: {e}");
            }
        }
        if started.elapsed() > RUN_LIMIT {
            child.kill().ok();
            child.wait().ok();
            panic!("chat-ops {args:?} ran past {RUN_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: stdout.join().expect("reading stdout"),
        stderr: stderr.join().expect("reading stderr"),
    }
}

fn read_all(mut pipe: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        pipe.read_to_end(&mut bytes)
            .expect("reading chat-ops' output");
        bytes
    })
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
