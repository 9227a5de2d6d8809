//! The embedded metrics the handlers write add up to what happened: one
//! line per request, a chat counted once however often it is replayed,
//! every token spent counted, and every refusal for lack of tokens.

use std::sync::{Arc, Mutex};

use api_tests::*;
use chat_core::metrics::MetricsSink;
use devtools::dynamodb_local::fresh_app;
use serde_json::Value;

#[derive(Default)]
struct Captured(Mutex<Vec<Value>>);

impl MetricsSink for Captured {
    fn write_line(&self, line: &str) {
        let document = serde_json::from_str(line).expect("a metrics line is one JSON document");
        self.0.lock().unwrap().push(document);
    }
}

fn sum(documents: &[Value], function: &str, metric: &str) -> f64 {
    documents
        .iter()
        .filter(|d| d["Function"] == function)
        .map(|d| {
            d[metric]
                .as_f64()
                .unwrap_or_else(|| panic!("{metric} missing in {d}"))
        })
        .sum()
}

#[tokio::test]
async fn chat_metrics_add_up_to_the_balance() {
    let mut app = fresh_app().await;
    let captured = Arc::new(Captured::default());
    app.metrics = captured.clone();
    let token = signed_up(&app, "alice").await;

    for i in 0..39 {
        assert_eq!(chat_as(&app, &token, &format!("m{i}")).await.status(), 200);
    }
    assert_eq!(keyed_chat_as(&app, &token, "k", "last").await.status(), 200);
    assert_eq!(keyed_chat_as(&app, &token, "k", "last").await.status(), 200);
    assert_eq!(chat_as(&app, &token, "over").await.status(), 402);
    assert_eq!(chat_as(&app, &token, "over again").await.status(), 402);
    assert_eq!(chat_as(&app, "not-a-token", "x").await.status(), 401);
    assert_eq!(balance_as(&app, &token).await.status(), 200);

    let documents = captured.0.lock().unwrap().clone();
    // register, login, 44 chats, balance: one line each.
    assert_eq!(documents.len(), 47);
    assert_eq!(sum(&documents, "chat", "Chats"), 40.0);
    assert_eq!(sum(&documents, "chat", "TokensSpent"), 4000.0);
    assert_eq!(sum(&documents, "chat", "InsufficientTokens"), 2.0);
    assert_eq!(stored_tokens(&app, "alice").await, Some(0));
    for document in &documents {
        assert!(document["Latency"].as_f64().unwrap() > 0.0, "{document}");
        let declared = document["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap();
        for metric in declared {
            let name = metric["Name"].as_str().unwrap();
            assert!(
                document[name].is_number(),
                "{name} declared without a value: {document}"
            );
        }
    }
    assert_eq!(
        documents
            .iter()
            .filter(|d| d["Function"] == "register")
            .count(),
        1
    );
    assert_ledger_balances(&app, "alice").await;
}
