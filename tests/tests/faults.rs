//! DynamoDB stops answering in the middle of a burst of chats and comes
//! back. Afterwards every 200 has its saved chat, the balance is exactly
//! 4000 - 100 x saved chats, and retrying each failed request with its
//! Idempotency-Key applies it exactly once: a chat whose answer was lost in
//! the fault is answered from its marker, not charged again.
//!
//! The emulator is frozen (SIGSTOP) rather than stopped: requests in flight
//! hang as they would on a partition, and what it had acknowledged stays
//! acknowledged. (Stopped with SIGTERM, DynamoDB Local now and then lost a
//! transaction it had already answered, an artefact of the emulator that no
//! code above it can make up for.)

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use api_tests::*;
use chat_core::{App, Config, Tables};
use devtools::dynamodb_local::{
    client_for, client_with_production_timeouts, free_port, quiet_app, repo_root,
};
use devtools::tables::create_missing_tables;
use lambda_http::{Body, RequestExt, Response};

/// A DynamoDB Local of this test's own that keeps its data on disk, so that
/// stopping and starting it again loses nothing that was committed.
struct Dynamo {
    port: u16,
    data: PathBuf,
    process: Option<Child>,
}

impl Dynamo {
    fn start(port: u16, data: PathBuf) -> Self {
        let mut dynamo = Dynamo {
            port,
            data,
            process: None,
        };
        dynamo.restart();
        dynamo
    }

    fn restart(&mut self) {
        let child = Command::new("bash")
            .arg(repo_root().join("scripts/dynamodb-local.sh"))
            .args(["run", &self.port.to_string()])
            .arg(&self.data)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting DynamoDB Local");
        self.process = Some(child);
        for _ in 0..600 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("DynamoDB Local did not come up on {}", self.port);
    }

    /// Freezes the process: it takes connections but answers nothing.
    fn freeze(&self) {
        self.signal("-STOP");
    }

    fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let child = self.process.as_ref().expect("running");
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill {signal}");
    }

    /// Stops it as an operator would (SIGTERM) and waits until it is gone.
    fn stop(&mut self) {
        if let Some(mut child) = self.process.take() {
            // A frozen process would not act on TERM.
            let _ = Command::new("kill")
                .args(["-CONT", &child.id().to_string()])
                .status();
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }
}

impl Drop for Dynamo {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dynamodb_outage_mid_burst_loses_and_double_charges_nothing() {
    const CHATS: usize = 40;
    let port = free_port();
    let data = std::env::temp_dir().join(format!("chat-api-faults-{port}"));
    let dynamo = Dynamo::start(port, data);
    let endpoint = format!("http://127.0.0.1:{port}");
    // The functions' own timeouts: while DynamoDB is gone, requests fail
    // fast and cleanly, as they would in Lambda.
    let client = client_with_production_timeouts(&endpoint);
    let tables = Tables::with_prefix("faults-");
    create_missing_tables(&client_for(&endpoint), &tables)
        .await
        .unwrap();
    let app = Arc::new(quiet_app(Config::with_tables(tables.clone()), client));
    // Set-up and the reads that check the outcome wait as long as a cold or
    // just-restarted emulator needs: they are the test's, not the functions'.
    let checker = quiet_app(Config::with_tables(tables), client_for(&endpoint));
    let token = Arc::new(signed_up(&checker, "alice").await);

    // DynamoDB Local's JVM is slow at first; warm it on another user so the
    // burst meets a steady emulator before the outage.
    let warm = signed_up(&checker, "warmup").await;
    for _ in 0..5 {
        assert_eq!(chat_as(&checker, &warm, "warm-up").await.status(), 200);
    }

    // The burst: one chat every 75 ms for 3 s. DynamoDB freezes as soon as a
    // few have gone through, for longer than a function may wait, and then
    // answers again.
    let through = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..CHATS)
        .map(|i| {
            let (app, token, through) = (app.clone(), token.clone(), through.clone());
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(75 * i as u64)).await;
                let response = numbered_chat(&app, &token, i).await;
                if response.status() == 200 {
                    through.fetch_add(1, Ordering::SeqCst);
                }
                (i, response.status().as_u16(), json_of(&response))
            })
        })
        .collect();
    for _ in 0..600 {
        if through.load(Ordering::SeqCst) >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    dynamo.freeze();
    tokio::time::sleep(FROZEN).await;
    dynamo.thaw();

    let mut answered = Vec::new();
    let mut failed = Vec::new();
    for task in tasks {
        let (i, status, body) = task.await.unwrap();
        match status {
            200 => answered.push(i),
            503 => {
                assert_eq!(body["error"], "unavailable");
                failed.push(i);
            }
            other => panic!("chat {i}: {other} {body}"),
        }
    }
    assert!(!failed.is_empty(), "the outage hit some requests");
    assert!(
        !answered.is_empty(),
        "some requests went through: failed {failed:?}"
    );

    // Every failed request again, with its key, as a client would until it
    // gets an answer: each lands exactly once, including those whose first
    // try committed before its answer was lost.
    let mut pending = failed;
    for _round in 0..10 {
        let mut still = Vec::new();
        for i in pending {
            let response = numbered_chat(&app, &token, i).await;
            match response.status().as_u16() {
                200 => {}
                503 => still.push(i),
                other => panic!("retry of chat {i}: {other} {}", json_of(&response)),
            }
        }
        pending = still;
        if pending.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(
        pending.is_empty(),
        "still failing after 10 rounds: {pending:?}"
    );
    // The thawed emulator may still be working through requests sent while
    // it was frozen (their callers gave up at the deadline), so no state is
    // read until every chat has its answer: from then on, a late request
    // can only find its key answered and change nothing.
    let saved = saved_messages(&checker, "alice").await;
    for i in &answered {
        assert!(
            saved.contains(&format!("message {i}")),
            "chat {i} was answered 200 but not saved"
        );
    }
    assert_eq!(saved.len(), CHATS, "each chat saved exactly once");
    assert_eq!(
        stored_tokens(&checker, "alice").await,
        Some(4000 - 100 * CHATS as i64)
    );
    assert_ledger_balances(&checker, "alice").await;
}

/// How long a function may take: the chat function's timeout in
/// `template.yaml`, carried as Lambda's deadline on every request.
const FUNCTION_TIMEOUT: Duration = Duration::from_secs(6);
/// Longer than a function waits, so requests sent meanwhile fail.
const FROZEN: Duration = Duration::from_secs(8);

/// Chat number `i` of the burst, always sent with the same key and message,
/// so a retry of it can only replay, never charge again; with the deadline
/// Lambda would give it.
async fn numbered_chat(app: &App, token: &str, i: usize) -> Response<Body> {
    let body = serde_json::json!({ "message": format!("message {i}") }).to_string();
    let mut request = with_auth(with_body(event("chat"), &body), token);
    request.headers_mut().insert(
        "idempotency-key",
        format!("key-{i}").parse().expect("a header value"),
    );
    let context = lambda_context_ending_in(FUNCTION_TIMEOUT);
    chat::handle(app, request.with_lambda_context(context))
        .await
        .expect("handlers answer")
}
