//! Cold start: from spawning a function's release binary to its first
//! answered invocation (the whole of a streamed answer), through the
//! stand-in of the Lambda Runtime API in `api_tests::runtime_api`, for
//! every function of the stack. Each start is a new process with the
//! environment Lambda sets, against DynamoDB Local, so the figure holds
//! process start, `App::start` (config, SDK client) and the first request
//! with its new connection to DynamoDB.

use std::path::Path;

use api_tests::runtime_api::cold_start;
use api_tests::{assert_ledger_balances, events_dir, register, start_events_session};
use chat_core::deadline::Deadline;
use chat_core::domain::Username;
use chat_core::Config;
use devtools::dynamodb_local::{client, fresh_tables, quiet_app};
use serde_json::{json, Value};

use crate::function_crates;
use crate::stats::Summary;

/// Every paid start is alice's (the sample events' session): chat,
/// completions, responses and embeddings start `starts` times each within
/// a minute or two, past the per-minute chat cap, whose count is a field of
/// the write the chat makes anyway (it costs a start nothing). Off here, so
/// that no start is timed as a 429.
const UNCAPPED: &[(&str, &str)] = &[("CHATS_PER_MINUTE", "0")];

pub async fn run(bin_dir: &Path, starts: usize) -> Value {
    // A new function is measured too, or this says which is missing.
    let measured: Vec<String> = COLD_STARTED.iter().map(|s| s.function.to_owned()).collect();
    let mut sorted = measured.clone();
    sorted.sort();
    assert_eq!(sorted, function_crates(), "COLD_STARTED: one per function");
    let client = client();
    let tables = fresh_tables(&client).await;
    let app = quiet_app(Config::with_tables(tables.clone()), client);
    assert_eq!(register(&app, "alice").await.status(), 201);
    // Enough for every paid start of every run (a flat 100 each), so none
    // is timed as a refusal.
    let funds = i64::try_from(starts * 100 * 10).unwrap();
    let alice = Username::parse("alice").unwrap();
    app.store
        .grant(
            &alice,
            funds,
            "cold starts",
            "bench-cold-start",
            Deadline::none(),
        )
        .await
        .unwrap();

    println!(
        "\n## Cold start: process start to first answer ({starts} starts each, {})",
        bin_dir.display()
    );
    println!(
        "{:<11} {:>9} {:>10} {:>9} {:>9}   first answer",
        "function", "min ms", "median ms", "max ms", "init p50"
    );
    let mut rows = Vec::new();
    for start in COLD_STARTED {
        let function = start.function;
        let binary = bin_dir.join(function);
        assert!(
            binary.exists(),
            "{}: not built (make bench builds it)",
            binary.display()
        );
        let (mut to_answer, mut to_init) = (Vec::new(), Vec::new());
        let mut answered = String::new();
        for nth in 0..starts {
            let event = event_for(start.event, nth);
            // The session the events carry is live again (a logout ended
            // it; refused when it is still there, which is as good).
            let _ = start_events_session(&app).await;
            let env: Vec<_> = UNCAPPED.iter().chain(start.env).copied().collect();
            let run = cold_start(&binary, &event, &tables, &env);
            answered = start.check(&run.answer);
            to_init.push(run.to_init);
            to_answer.push(run.to_answer);
        }
        let answer = Summary::of(&to_answer);
        let init = Summary::of(&to_init);
        println!(
            "{function:<11} {:>9.2} {:>10.2} {:>9.2} {:>9.2}   {answered}",
            answer.min, answer.p50, answer.max, init.p50
        );
        rows.push(json!({
            "function": function,
            "event": start.event.describe(),
            "answer": answered,
            "to_first_answer_ms": answer.json(),
            "to_init_done_ms": init.json(),
        }));
    }
    assert_ledger_balances(&app, "alice").await;
    Value::Array(rows)
}

/// What a function is handed.
#[derive(Clone, Copy)]
pub enum Sample {
    /// `events/<name>.json`.
    File(&'static str),
    /// A GET of a path no route serves (the fallback's work).
    UnknownPath,
    /// A GET of `/` (the web page).
    Page,
    /// EventBridge's scheduled event (the sweeper's trigger).
    Schedule,
    /// A stream batch with no records (the alerts function without an
    /// alert to publish, so no EventBridge call).
    EmptyBatch,
}

impl Sample {
    fn describe(self) -> String {
        match self {
            Sample::File(name) => format!("events/{name}.json"),
            Sample::UnknownPath => "a GET of an unknown path".to_owned(),
            Sample::Page => "a GET of /".to_owned(),
            Sample::Schedule => "a scheduled event".to_owned(),
            Sample::EmptyBatch => "a stream batch of no records".to_owned(),
        }
    }
}

/// A function measured, the event it is handed, and the answer it must
/// give (an HTTP status, or none for the functions no request reaches).
pub struct ColdStart {
    pub function: &'static str,
    pub event: Sample,
    pub status: Option<u64>,
    pub env: &'static [(&'static str, &'static str)],
}

impl ColdStart {
    const fn http(function: &'static str, event: Sample, status: u64) -> Self {
        ColdStart {
            function,
            event,
            status: Some(status),
            env: &[],
        }
    }

    /// Fails the run on an answer that is not the one expected (a timed
    /// refusal or error would be a wrong figure); returns it in short.
    fn check(&self, answer: &Value) -> String {
        match self.status {
            Some(status) => {
                assert_eq!(
                    answer["statusCode"].as_u64(),
                    Some(status),
                    "{}: {answer}",
                    self.function
                );
                format!("HTTP {status}")
            }
            None => {
                assert!(
                    answer.is_object() && answer.get("errorType").is_none(),
                    "{}: {answer}",
                    self.function
                );
                answer.to_string()
            }
        }
    }
}

/// Every function of the stack, each with its sample event.
pub const COLD_STARTED: &[ColdStart] = &[
    ColdStart::http("register", Sample::File("register"), 201),
    ColdStart::http("login", Sample::File("login"), 200),
    ColdStart::http("chat", Sample::File("chat"), 200),
    ColdStart::http("balance", Sample::File("balance"), 200),
    ColdStart::http("logout", Sample::File("logout"), 204),
    ColdStart::http("history", Sample::File("history"), 200),
    ColdStart::http("keys", Sample::File("keys-list"), 200),
    ColdStart::http("usage", Sample::File("usage"), 200),
    ColdStart::http("completions", Sample::File("completions"), 200),
    ColdStart::http("responses", Sample::File("responses"), 200),
    ColdStart::http("models", Sample::File("models"), 200),
    ColdStart::http("embeddings", Sample::File("embeddings"), 200),
    ColdStart::http("web", Sample::Page, 200),
    ColdStart::http("fallback", Sample::UnknownPath, 404),
    ColdStart {
        function: "sweeper",
        event: Sample::Schedule,
        status: None,
        env: &[],
    },
    ColdStart {
        function: "alerts",
        event: Sample::EmptyBatch,
        status: None,
        env: &[("ALERT_BUS", "chat-alerts")],
    },
];

/// The event of `sample` for the `nth` start, as its function gets it:
/// each registration of a name of its own (bob0, bob1, ...).
fn event_for(sample: Sample, nth: usize) -> String {
    let read = |name: &str| -> Value {
        serde_json::from_str(
            &std::fs::read_to_string(events_dir().join(format!("{name}.json"))).unwrap(),
        )
        .unwrap()
    };
    // An HTTP API GET of `path`, as the balance's sample event is one.
    let get = |path: &str, route: &str| {
        let mut event = read("balance");
        event["rawPath"] = json!(path);
        event["routeKey"] = json!(route);
        event["requestContext"]["routeKey"] = json!(route);
        event["requestContext"]["http"]["path"] = json!(path);
        event.to_string()
    };
    match sample {
        Sample::File("register") => {
            let mut event = read("register");
            let mut body: Value = serde_json::from_str(event["body"].as_str().unwrap()).unwrap();
            body["username"] = json!(format!("{}{nth}", body["username"].as_str().unwrap()));
            event["body"] = json!(body.to_string());
            // And from an address of its own (TEST-NET-2): one address
            // may make only REGISTRATIONS_PER_IP accounts an hour.
            event["requestContext"]["http"]["sourceIp"] =
                json!(format!("198.51.100.{}", nth % 254 + 1));
            event.to_string()
        }
        Sample::File(name) => read(name).to_string(),
        Sample::UnknownPath => get("/no-such-path", "$default"),
        Sample::Page => get("/", "GET /"),
        Sample::Schedule => json!({
            "version": "0",
            "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": "123456789012",
            "time": "2026-12-03T00:00:00Z",
            "region": "us-east-1",
            "resources": ["arn:aws:events:us-east-1:123456789012:rule/sweeper"],
            "detail": {}
        })
        .to_string(),
        Sample::EmptyBatch => json!({"Records": []}).to_string(),
    }
}
