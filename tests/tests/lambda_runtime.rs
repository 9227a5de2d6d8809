//! A function's real binary, run as Lambda runs it (through the stand-in
//! Runtime API in `api_tests::runtime_api`) with Lambda's JSON log format:
//! every line it writes is JSON, its log lines carry the request id, its
//! embedded metrics are well formed, and no secret reaches the log.

use api_tests::runtime_api::{cold_start, debug_binary, REQUEST_ID};
use api_tests::*;
use chat_core::domain::AuthToken;
use devtools::dynamodb_local::fresh_app;
use serde_json::Value;

const NAMESPACE: &str = "ChatApiTest";

fn lines(output: &str) -> Vec<Value> {
    output
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect()
}

fn metrics_of(lines: &[Value]) -> Vec<&Value> {
    lines
        .iter()
        .filter(|line| line.get("_aws").is_some())
        .collect()
}

#[tokio::test]
async fn chat_logs_json_with_the_request_id_and_writes_its_metrics() {
    let app = fresh_app().await;
    assert_eq!(register(&app, "alice").await.status(), 201);
    start_events_session(&app).await.unwrap();
    let token = AuthToken::parse(EVENTS_TOKEN).unwrap();
    let event = std::fs::read_to_string(events_dir().join("chat.json")).unwrap();

    let run = cold_start(
        &debug_binary("chat"),
        &event,
        app.store.tables(),
        &[
            ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
            ("METRICS_NAMESPACE", NAMESPACE),
            // A charged chat logs its line at debug: at info, the metrics
            // line alone records it (see the next test).
            ("RUST_LOG", "info,chat=debug"),
        ],
    );
    assert_eq!(run.answer["statusCode"], 200, "{}", run.output);
    let lines = lines(&run.output);

    let logs: Vec<&Value> = lines
        .iter()
        .filter(|line| line.get("level").is_some())
        .collect();
    let charged = logs
        .iter()
        .find(|line| line["fields"]["message"] == "chat charged")
        .unwrap_or_else(|| panic!("no 'chat charged' line in {lines:?}"));
    assert_eq!(charged["span"]["requestId"], REQUEST_ID, "{charged}");
    assert_eq!(charged["fields"]["user"], "alice");

    let metrics = metrics_of(&lines);
    assert_eq!(
        metrics.len(),
        1,
        "one metrics line per request: {metrics:?}"
    );
    let document = metrics[0];
    let directive = &document["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(directive["Namespace"], NAMESPACE);
    assert!(document["_aws"]["Timestamp"].as_u64().unwrap() > 1_700_000_000_000);
    assert_eq!(document["Function"], "chat");
    assert_eq!(document["Chats"], 1);
    assert_eq!(document["TokensSpent"], 100);
    assert_eq!(document["InsufficientTokens"], 0);
    assert!(document["Latency"].as_f64().unwrap() > 0.0);

    // Every line written inside the invocation names it.
    for line in logs.iter().filter(|line| line.get("span").is_some()) {
        assert_eq!(line["span"]["requestId"], REQUEST_ID, "{line}");
    }
    let (_, secret) = EVENTS_TOKEN.split_once('.').unwrap();
    let message = "Hello, how are you?";
    for needle in [EVENTS_TOKEN, secret, token.session_id().as_str(), message] {
        assert!(!run.output.contains(needle), "the log holds {needle:?}");
    }
    assert_eq!(stored_tokens(&app, "alice").await, Some(3900));
    assert_ledger_balances(&app, "alice").await;
}

/// What CloudWatch Logs bills for a chat at the default level (README
/// "Cost"): the metrics line and nothing else. Lambda's own START and REPORT
/// lines are off in the template (`SystemLogLevel: WARN`).
#[tokio::test]
async fn a_charged_chat_logs_only_its_metrics_line_at_info() {
    let app = fresh_app().await;
    assert_eq!(register(&app, "alice").await.status(), 201);
    start_events_session(&app).await.unwrap();
    let event = std::fs::read_to_string(events_dir().join("chat.json")).unwrap();
    let run = cold_start(
        &debug_binary("chat"),
        &event,
        app.store.tables(),
        &[("AWS_LAMBDA_LOG_FORMAT", "JSON")],
    );
    assert_eq!(run.answer["statusCode"], 200, "{}", run.output);
    let lines = lines(&run.output);
    let inside: Vec<&Value> = lines
        .iter()
        .filter(|line| line.get("_aws").is_some() || line["span"]["requestId"] == REQUEST_ID)
        .collect();
    assert_eq!(inside.len(), 1, "{inside:?}");
    let bytes = inside[0].to_string().len() + 1;
    assert!(bytes <= 400, "{bytes} bytes of logs for one chat");
}

#[tokio::test]
async fn a_refused_request_is_logged_and_measured_too() {
    let app = fresh_app().await;
    let event = std::fs::read_to_string(events_dir().join("balance-invalid-token.json")).unwrap();
    let run = cold_start(
        &debug_binary("balance"),
        &event,
        app.store.tables(),
        &[("AWS_LAMBDA_LOG_FORMAT", "JSON")],
    );
    assert_eq!(run.answer["statusCode"], 401, "{}", run.output);
    let lines = lines(&run.output);
    let refused = lines
        .iter()
        .find(|line| line["fields"]["message"] == "request refused")
        .unwrap_or_else(|| panic!("no refusal line in {lines:?}"));
    assert_eq!(refused["fields"]["code"], "unauthorized");
    assert_eq!(refused["span"]["requestId"], REQUEST_ID);
    let metrics = metrics_of(&lines);
    assert_eq!(metrics.len(), 1);
    assert_eq!(metrics[0]["Function"], "balance");
    assert_eq!(
        metrics[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"],
        "ChatApi"
    );
    assert!(metrics[0].get("Chats").is_none());
}

/// A streamed completion through the real binary, as Lambda's response
/// streaming carries it: the prelude's status and event-stream type, then
/// every chunk up to `[DONE]`, and the chat charged once.
#[tokio::test]
async fn a_streamed_completion_reaches_the_runtime_whole() {
    let app = fresh_app().await;
    assert_eq!(register(&app, "alice").await.status(), 201);
    start_events_session(&app).await.unwrap();
    let event = std::fs::read_to_string(events_dir().join("completions-stream.json")).unwrap();

    let run = cold_start(
        &debug_binary("completions"),
        &event,
        app.store.tables(),
        &[],
    );
    assert_eq!(run.answer["statusCode"], 200, "{}", run.output);
    assert_eq!(
        run.answer["headers"]["content-type"], "text/event-stream",
        "{}",
        run.answer
    );
    let body = run.answer["body"].as_str().expect("the streamed body");
    let data: Vec<&str> = body
        .split("\n\n")
        .filter_map(|event| event.strip_prefix("data: "))
        .collect();
    assert_eq!(data.last(), Some(&"[DONE]"), "{body}");
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|chunk| serde_json::from_str(chunk).unwrap())
        .collect();
    assert!(chunks.len() >= 2, "{body}");
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk"),
        "{body}"
    );
    assert_eq!(
        chunks
            .iter()
            .filter(|c| c["choices"][0]["finish_reason"] == "stop")
            .count(),
        1,
        "{body}"
    );
    assert_eq!(stored_tokens(&app, "alice").await, Some(3900));
    assert_ledger_balances(&app, "alice").await;
}
