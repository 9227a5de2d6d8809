//! The OpenAI route and API keys over HTTP, through `make run` as a user
//! starts it, with a paid model: the ConverseStream stand-in behind it. A
//! client that closes its connection after the first chunk is charged for
//! what was written, never more than the hold, and the ledger holds.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use api_tests::converse_stub::{Answer, ConverseStub, Gate, Streamed};
use api_tests::http::send;
use api_tests::local_api::LocalApi;
use api_tests::{assert_ledger_balances, stored_tokens};
use serde_json::json;

const JSON: (&str, &str) = ("Content-Type", "application/json");
const MODEL_ID: &str = "stand-in";
/// Far longer than anything here takes on a slow machine.
const PATIENCE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_streams_over_http_and_a_hang_up_is_charged_what_was_written() {
    let pieces: Vec<String> = (0..50).map(|i| format!("word{i} ")).collect();
    let pieces: Vec<&str> = pieces.iter().map(String::as_str).collect();
    // The first piece at once, the rest once the client has gone, paced so
    // the model is still writing when the hang-up reaches it.
    let gate = Gate::default();
    let stub = ConverseStub::start(Answer::Stream(
        Streamed::pieces(&pieces)
            .gated_after_first(&gate)
            .between_pieces(Duration::from_millis(200)),
    ));
    let api = LocalApi::start_with(&[
        ("MODEL_ID", MODEL_ID),
        ("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", stub.url()),
        ("PRICING", "usage"),
        ("MODEL_INPUT_PRICE", "3"),
        ("MODEL_OUTPUT_PRICE", "15"),
    ]);
    let port = api.port;
    let credentials = json!({"username": "alice", "password": "correct-horse-battery"}).to_string();
    assert_eq!(
        send(port, "POST", "/register/", &[JSON], credentials.as_bytes()).status,
        201
    );
    let login = send(port, "POST", "/login/", &[JSON], credentials.as_bytes());
    let token = login.json()["token"].as_str().unwrap().to_owned();
    let created = send(
        port,
        "POST",
        "/keys/",
        &[JSON, ("Authorization", &format!("Token {token}"))],
        br#"{"name": "streams"}"#,
    );
    assert_eq!(created.status, 201, "{created:?}");
    let key = created.json()["key"].as_str().unwrap().to_owned();

    // The model list names the model the stand-in plays.
    let models = send(
        port,
        "GET",
        "/v1/models",
        &[("Authorization", &format!("Bearer {key}"))],
        b"",
    );
    assert_eq!(models.json()["data"][0]["id"], MODEL_ID);

    // A stream, read until its first piece of text, then the connection
    // closed, as a client that gives up does.
    let body = json!({
        "model": MODEL_ID,
        "stream": true,
        "max_tokens": 200,
        "messages": [{"role": "user", "content": "Count for me"}],
    })
    .to_string();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    write!(
        stream,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut seen = Vec::new();
    let mut buffer = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("word0") {
        let read = stream.read(&mut buffer).unwrap();
        assert!(
            read > 0,
            "the stream ended early: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buffer[..read]);
    }
    let head = String::from_utf8_lossy(&seen).into_owned();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_lowercase()
            .contains("content-type: text/event-stream"),
        "{head}"
    );
    drop(stream);
    gate.open();

    // The hang-up goes through the gateway to the function, which stops
    // the model: the stand-in sees it.
    assert_eq!(stub.wait_for_hang_ups(1, PATIENCE).await, 1);
    let tables = api.tables();
    let started = std::time::Instant::now();
    loop {
        let audit = api_tests::audit_of(&tables, "alice").await;
        if audit.open_holds == 0 && stored_tokens(&tables, "alice").await < Some(4000) {
            break;
        }
        assert!(started.elapsed() < PATIENCE, "the stream was never settled");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Charged exactly the bound of what it read and of what it wrote
    // before the function stopped it (saved as the reply), within the
    // reply's cap and so the hold.
    let history = send(
        port,
        "GET",
        "/chats/",
        &[("Authorization", &format!("Token {token}"))],
        b"",
    );
    let saved = history.json()["chats"][0]["response"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(saved.starts_with("word0 word1 "), "{saved}");
    assert!(!saved.contains("word49"), "read to the end: {saved}");
    let spent = 4000 - stored_tokens(&tables, "alice").await.unwrap();
    let input = "Count for me".len() as u64
        + chat_core::pricing::MESSAGE_OVERHEAD_TOKENS as u64
        + chat_core::pricing::INPUT_OVERHEAD_TOKENS;
    let written = (saved.len() as u64).min(200);
    assert_eq!(spent, (input * 3 + written * 15).div_ceil(1000) as i64);
    assert_ledger_balances(&tables, "alice").await;

    // The key is revoked: the next request with it is refused.
    let id = created.json()["id"].as_str().unwrap().to_owned();
    let revoked = send(
        port,
        "DELETE",
        &format!("/keys/{id}"),
        &[("Authorization", &format!("Token {token}"))],
        b"",
    );
    assert_eq!(revoked.status, 204);
    let refused = send(
        port,
        "GET",
        "/v1/models",
        &[("Authorization", &format!("Bearer {key}"))],
        b"",
    );
    assert_eq!(refused.status, 401);
    assert_eq!(refused.json()["error"]["code"], "invalid_api_key");
}

/// Every process below `pid` whose program is named `name`.
fn descendants_named(pid: u32, name: &str) -> Vec<u32> {
    let parent_of = |child: u32| -> Option<u32> {
        let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).ok()?;
        // "pid (comm) state ppid ...": comm may hold spaces, so after ')'.
        stat.rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    let below = |mut child: u32| {
        while let Some(parent) = parent_of(child).filter(|p| *p > 1) {
            if parent == pid {
                return true;
            }
            child = parent;
        }
        false
    };
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| {
            std::fs::read_link(format!("/proc/{child}/exe"))
                .is_ok_and(|exe| exe.file_name().is_some_and(|n| n == name))
        })
        .filter(|child| below(*child))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_killed_after_its_model_wrote_is_charged_by_make_runs_sweeper() {
    let stub = ConverseStub::start(Answer::Stream(
        Streamed::pieces(&["written ", "never"]).between_pieces(Duration::from_secs(600)),
    ));
    let api = LocalApi::start_with(&[
        ("MODEL_ID", MODEL_ID),
        ("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", stub.url()),
        ("MODEL_TIMEOUT_SECONDS", "15"),
        ("HOLD_SECONDS", "30"),
        ("SWEEP_SECONDS", "1"),
        // Priced by use, so the whole hold is told apart from a charge for
        // what was written.
        ("PRICING", "usage"),
        ("MODEL_INPUT_PRICE", "1000"),
        ("MODEL_OUTPUT_PRICE", "2000"),
    ]);
    let port = api.port;
    let credentials = json!({"username": "alice", "password": "correct-horse-battery"}).to_string();
    assert_eq!(
        send(port, "POST", "/register/", &[JSON], credentials.as_bytes()).status,
        201
    );
    let login = send(port, "POST", "/login/", &[JSON], credentials.as_bytes());
    let token = login.json()["token"].as_str().unwrap().to_owned();
    // The client sends its chat and waits: what becomes of its connection
    // is the emulator's affair; the money is what this test reads.
    let body = r#"{"message": "write and die"}"#;
    let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        client,
        "POST /chat/ HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Token {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let started = std::time::Instant::now();
    while stub.call_count() == 0 {
        assert!(started.elapsed() < PATIENCE, "the model was never called");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The chat function, mid-reply, dies as a crashed Lambda does.
    let functions = descendants_named(api.pid(), "chat");
    assert_eq!(functions.len(), 1, "one chat function: {functions:?}");
    std::process::Command::new("kill")
        .args(["-KILL", &functions[0].to_string()])
        .status()
        .unwrap();
    let tables = api.tables();
    // (13 bytes + 16 + 64) x 1000 + 1024 x 2000 thousandths: the message
    // read, the default reply cap written.
    let hold = 93 + 2048;
    assert_eq!(
        stored_tokens(&tables, "alice").await,
        Some(4000 - hold),
        "held"
    );
    // Past HOLD_SECONDS, the sweeper make run runs settles it: nothing
    // recorded what the model did, so the whole hold is charged.
    let started = std::time::Instant::now();
    while api_tests::audit_of(&tables, "alice").await.open_holds > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the sweeper never settled the hold"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(stored_tokens(&tables, "alice").await, Some(4000 - hold));
    assert_eq!(
        api_tests::saved_messages(&tables, "alice").await,
        ["write and die"]
    );
    assert_eq!(stub.call_count(), 1, "the model was called once");
    assert_ledger_balances(&tables, "alice").await;
}
