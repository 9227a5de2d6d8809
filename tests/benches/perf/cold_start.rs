//! Cold start: from spawning a function's release binary to its first
//! answered invocation, through the stand-in of the Lambda Runtime API in
//! `api_tests::runtime_api`. Each start is a new process with the
//! environment Lambda sets, against DynamoDB Local, so the figure holds
//! process start, `App::start` (config, SDK client) and the first request
//! with its new connection to DynamoDB.

use std::path::Path;

use api_tests::runtime_api::cold_start;
use api_tests::{events_dir, register, start_events_session};
use aws_sdk_dynamodb::types::AttributeValue;
use chat_core::{App, Config};
use devtools::dynamodb_local::{client, fresh_tables, quiet_app};
use serde_json::{json, Value};

use crate::stats::Summary;
use crate::COLD_STARTED;

pub async fn run(bin_dir: &Path, starts: usize) -> Value {
    let client = client();
    let tables = fresh_tables(&client).await;
    let app = quiet_app(Config::with_tables(tables.clone()), client);
    assert_eq!(register(&app, "alice").await.status(), 201);

    println!(
        "\n## Cold start: process start to first answer ({starts} starts each, {})",
        bin_dir.display()
    );
    println!(
        "{:<10} {:>9} {:>10} {:>9} {:>9}   first answer",
        "function", "min ms", "median ms", "max ms", "init p50"
    );
    let mut rows = Vec::new();
    for function in COLD_STARTED {
        let binary = bin_dir.join(function);
        assert!(
            binary.exists(),
            "{}: not built (make bench builds it)",
            binary.display()
        );
        let event = event_for(function);
        let (mut to_answer, mut to_init, mut status) = (Vec::new(), Vec::new(), 0);
        for _ in 0..starts {
            reset(&app, function, &event).await;
            let run = cold_start(&binary, &event, &tables, &[]);
            to_init.push(run.to_init);
            to_answer.push(run.to_answer);
            status = run.answer["statusCode"].as_u64().unwrap_or(0);
        }
        let answer = Summary::of(&to_answer);
        let init = Summary::of(&to_init);
        println!(
            "{function:<10} {:>9.2} {:>10.2} {:>9.2} {:>9.2}   HTTP {status}",
            answer.min, answer.p50, answer.max, init.p50
        );
        rows.push(json!({
            "function": function,
            "event": if function == "fallback" { "a GET of an unknown path".to_owned() } else { format!("events/{function}.json") },
            "status": status,
            "to_first_answer_ms": answer.json(),
            "to_init_done_ms": init.json(),
        }));
    }
    Value::Array(rows)
}

/// The sample event of the function; fallback gets an unknown path.
fn event_for(function: &str) -> String {
    if function == "fallback" {
        let mut event: Value = serde_json::from_str(
            &std::fs::read_to_string(events_dir().join("balance.json")).unwrap(),
        )
        .unwrap();
        event["rawPath"] = json!("/no-such-path");
        event["routeKey"] = json!("$default");
        event["requestContext"]["http"]["path"] = json!("/no-such-path");
        return event.to_string();
    }
    std::fs::read_to_string(events_dir().join(format!("{function}.json"))).unwrap()
}

/// Puts the world back as each function's sample event expects it: the
/// name `register` takes is free, and the session the events carry is live.
async fn reset(app: &App, function: &str, event: &str) {
    let store = &app.store;
    if function == "register" {
        let event: Value = serde_json::from_str(event).unwrap();
        let body: Value = serde_json::from_str(event["body"].as_str().unwrap()).unwrap();
        let username = body["username"].as_str().unwrap();
        store
            .client()
            .delete_item()
            .table_name(&store.tables().users)
            .key("username", AttributeValue::S(username.into()))
            .send()
            .await
            .unwrap();
    }
    // Refused when the session is still there, which is as good.
    let _ = start_events_session(app).await;
}
