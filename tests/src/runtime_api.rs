//! A stand-in for the Lambda Runtime API, to run a function's real binary
//! as Lambda does: a new process with Lambda's environment, which asks
//! `GET .../invocation/next` for its event and posts the answer to
//! `POST .../invocation/{id}/response` (whole, or streamed in chunks). Used
//! for cold-start figures and to check what a function writes to its log in
//! Lambda's JSON format.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chat_core::Tables;
use devtools::dynamodb_local::{endpoint, repo_root};
use serde_json::Value;

use crate::http::RequestReader;
use crate::local_api::user_command;

/// The request id the stand-in gives the one invocation it hands out.
pub const REQUEST_ID: &str = "8476a536-e9f4-11e8-9739-2dfe598c3fcd";

/// One cold start, timed from spawning the process.
pub struct ColdRun {
    /// Until the runtime asked for its first event: initialisation.
    pub to_init: Duration,
    /// Until it posted the answer.
    pub to_answer: Duration,
    /// The answer: API Gateway's response object (statusCode, body, ...).
    pub answer: Value,
    /// Everything the process wrote to stdout and stderr, in order per
    /// stream (stdout first).
    pub output: String,
}

/// What the stand-in saw, in order.
enum Seen {
    FirstNext(Instant),
    Answer(Instant, Value),
    Error(String),
}

/// The debug build of `function`, built now if it is missing or stale
/// (a no-op when `make test` built it already).
pub fn debug_binary(function: &str) -> PathBuf {
    let status = user_command("cargo")
        .args(["build", "--quiet", "-p", function])
        .current_dir(repo_root())
        .status()
        .expect("running cargo build");
    assert!(status.success(), "cargo build -p {function} failed");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| repo_root().join("target"), PathBuf::from);
    target.join("debug").join(function)
}

/// Starts `binary` with Lambda's environment, hands it `event`, and stops
/// it once it has answered (as Lambda freezes it).
pub fn cold_start(
    binary: &Path,
    event: &str,
    tables: &Tables,
    extra_env: &[(&str, &str)],
) -> ColdRun {
    start(binary, event, tables, extra_env).answer()
}

/// A function process started by [`start`], handed its one event.
pub struct Running {
    binary: PathBuf,
    child: Child,
    seen: Receiver<Seen>,
    started: Instant,
}

/// Starts `binary` with Lambda's environment and hands it `event`.
pub fn start(binary: &Path, event: &str, tables: &Tables, extra_env: &[(&str, &str)]) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let runtime_api = listener.local_addr().unwrap().to_string();
    let (seen_tx, seen) = channel();
    let event = event.to_owned();
    let handed_out = Arc::new(AtomicBool::new(false));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let (seen_tx, event, handed_out) = (seen_tx.clone(), event.clone(), handed_out.clone());
            std::thread::spawn(move || serve(stream, &event, &handed_out, &seen_tx));
        }
    });

    let started = Instant::now();
    let child = Command::new(binary)
        .env_clear()
        // What Lambda sets for a provided.al2023 function; the credentials
        // are DynamoDB Local's dummies and the endpoint replaces DynamoDB's.
        .env("AWS_LAMBDA_RUNTIME_API", &runtime_api)
        .env("AWS_LAMBDA_FUNCTION_NAME", "local")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/local")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "local")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "local")
        .env("AWS_SECRET_ACCESS_KEY", "local")
        .env("AWS_SESSION_TOKEN", "local")
        .env("AWS_ENDPOINT_URL", endpoint())
        .env("USERS_TABLE", &tables.users)
        .env("CREDENTIALS_TABLE", &tables.credentials)
        .env("CHATS_TABLE", &tables.chats)
        .env("RUST_LOG", "info")
        .envs(extra_env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));

    Running {
        binary: binary.to_owned(),
        child,
        seen,
        started,
    }
}

impl Running {
    /// Waits for the answer (60 s at most), then stops the process.
    pub fn answer(mut self) -> ColdRun {
        let mut to_init = None;
        let outcome = loop {
            match self.seen.recv_timeout(Duration::from_secs(60)) {
                Ok(Seen::FirstNext(at)) => to_init = Some(at - self.started),
                Ok(Seen::Answer(at, answer)) => break Ok((at - self.started, answer)),
                Ok(Seen::Error(body)) => {
                    break Err(format!("the function reported an error: {body}"))
                }
                Err(_) => break Err("no answer within 60 s".to_owned()),
            }
        };
        let output = self.stop();
        let (to_answer, answer) =
            outcome.unwrap_or_else(|e| panic!("{}: {e}\n{output}", self.binary.display()));
        ColdRun {
            to_init: to_init.expect("the runtime asked for its event first"),
            to_answer,
            answer,
            output,
        }
    }

    /// Waits (60 s at most) for a process that should stop by itself, as a
    /// cold start that refuses its configuration does: whether it did,
    /// failing, and what it wrote.
    pub fn exit(mut self) -> (bool, String) {
        let started = Instant::now();
        let failed = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break !status.success(),
                _ if started.elapsed() > Duration::from_secs(60) => break false,
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        (failed, self.stop())
    }

    /// Kills the process where it is (SIGKILL, as Lambda ends a function
    /// that timed out); what it wrote until then.
    pub fn kill(mut self) -> String {
        self.stop()
    }

    fn stop(&mut self) -> String {
        let _ = self.child.kill();
        let mut output = String::new();
        // One invocation's lines fit the pipes' buffers, so reading after
        // the process is gone loses nothing.
        let _ = self
            .child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut output);
        let _ = self
            .child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut output);
        let _ = self.child.wait();
        output
    }
}

/// The answer a function posted, as one JSON value: a buffered answer is
/// that value already; a streamed one (`run_with_streaming_response`) is its
/// prelude (status and headers as JSON), eight NUL bytes, then the body as
/// written, which goes into the prelude as `body`.
fn answer_of(posted: &[u8]) -> Value {
    const SEPARATOR: &[u8] = &[0; 8];
    let Some(at) = posted.windows(8).position(|w| w == SEPARATOR) else {
        return serde_json::from_slice(posted).unwrap_or(Value::Null);
    };
    let mut prelude: Value = serde_json::from_slice(&posted[..at]).unwrap_or(Value::Null);
    if let Some(fields) = prelude.as_object_mut() {
        let body = String::from_utf8_lossy(&posted[at + SEPARATOR.len()..]).into_owned();
        fields.insert("body".to_owned(), Value::String(body));
    }
    prelude
}

/// Serves one connection of the runtime: hands out the event once, takes
/// the answer, and leaves the second `next` waiting until the process goes.
fn serve(stream: TcpStream, event: &str, handed_out: &AtomicBool, seen: &Sender<Seen>) {
    let mut reader = RequestReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    while let Some((path, body)) = reader.next_request() {
        if path.ends_with("/invocation/next") {
            if handed_out.swap(true, Ordering::SeqCst) {
                // Held until the process goes (the writer is the same socket).
                let _ = writer.read_to_end(&mut Vec::new());
                return;
            }
            let _ = seen.send(Seen::FirstNext(Instant::now()));
            let deadline =
                SystemTime::now().duration_since(UNIX_EPOCH).unwrap() + Duration::from_secs(30);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                 Lambda-Runtime-Aws-Request-Id: {REQUEST_ID}\r\n\
                 Lambda-Runtime-Deadline-Ms: {}\r\n\
                 Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:123456789012:function:local\r\n\
                 Lambda-Runtime-Trace-Id: Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1\r\n\
                 Content-Length: {}\r\n\r\n",
                deadline.as_millis(),
                event.len()
            );
            let _ = writer.write_all(head.as_bytes());
            let _ = writer.write_all(event.as_bytes());
        } else if path.ends_with("/response") {
            let at = Instant::now();
            let answer = answer_of(&body);
            let _ = writer.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n");
            let _ = seen.send(Seen::Answer(at, answer));
        } else {
            let _ = writer.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n");
            let _ = seen.send(Seen::Error(format!(
                "{path}: {}",
                String::from_utf8_lossy(&body)
            )));
        }
    }
}
