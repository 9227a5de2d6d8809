//! The IAM grants in `template.yaml` against what the code really sends.
//!
//! Locally nothing enforces IAM, so a missing grant would pass every other
//! test and fail in AWS with AccessDenied. Each function's code paths run
//! here against DynamoDB Local with an interceptor recording every
//! (action, table) they need; the template must grant exactly that set:
//! nothing missing, and nothing no code path uses (least privilege).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use api_tests::calls::{counted_app, CallLog};
use api_tests::converse_stub::{Answer, ConverseStub};
use api_tests::*;
use chat::model::ModelConfig;
use chat_core::local::repo_root;
use chat_core::store::schema::TABLES;
use chat_core::App;
use serde_yaml::Value;

type Grants = BTreeSet<(String, String)>;

/// (action, logical id of the table) each function needs, from its runs.
async fn needed() -> BTreeMap<&'static str, Grants> {
    let (app, calls) = counted_app().await;
    let mut needed = BTreeMap::new();
    let mut record = |function: &'static str, app: &App, calls: &CallLog| {
        let by_logical_id: Grants = calls
            .take_accesses()
            .into_iter()
            .map(|(action, table)| (action, logical_id(app, &table)))
            .collect();
        needed
            .entry(function)
            .or_insert_with(Grants::new)
            .extend(by_logical_id);
    };

    assert_eq!(register(&app, "alice").await.status(), 201);
    assert_eq!(register(&app, "alice").await.status(), 409);
    record("RegisterFunction", &app, &calls);

    let token = logged_in(&app, "alice").await;
    assert_eq!(
        login_with(&app, "alice", "wrong-password").await.status(),
        401
    );
    assert_eq!(
        login_with(&app, "nobody", "wrong-password").await.status(),
        401
    );
    record("LoginFunction", &app, &calls);

    assert_eq!(chat_as(&app, &token, "hello").await.status(), 200);
    assert_eq!(
        keyed_chat_as(&app, &token, "k", "again").await.status(),
        200
    );
    assert_eq!(
        keyed_chat_as(&app, &token, "k", "again").await.status(),
        200
    );
    assert_eq!(chat_as(&app, "YWxpY2U.AAAA", "forged").await.status(), 401);
    record("ChatFunction", &app, &calls);

    assert_eq!(balance_as(&app, &token).await.status(), 200);
    record("BalanceFunction", &app, &calls);

    let page = chats::handle(&app, with_auth(event("chats"), &token))
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    record("ChatsFunction", &app, &calls);

    // With a model: the read before the model, keyed and not.
    let stub = ConverseStub::start(Answer::text("from the model"));
    let mut paid = app;
    paid.responder = Arc::new(stub.responder(ModelConfig::new("test-model")));
    assert_eq!(
        keyed_chat_as(&paid, &token, "m", "model").await.status(),
        200
    );
    assert_eq!(
        keyed_chat_as(&paid, &token, "m", "model").await.status(),
        200
    );
    assert_eq!(chat_as(&paid, &token, "model").await.status(), 200);
    assert_eq!(stub.call_count(), 2);
    record("ChatFunction", &paid, &calls);

    let response = logout::handle(&paid, with_auth(event("logout"), &token))
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    record("LogoutFunction", &paid, &calls);
    needed
}

fn logical_id(app: &App, table: &str) -> String {
    TABLES
        .iter()
        .find(|spec| spec.name_in(app.store.tables()) == table)
        .unwrap_or_else(|| panic!("a call to a table of no known kind: {table}"))
        .logical_id
        .to_owned()
}

/// (action, table) each function's policies grant on DynamoDB tables,
/// conditional statements included (the model's read is one).
fn granted() -> BTreeMap<String, Grants> {
    let text = std::fs::read_to_string(repo_root().join("template.yaml")).unwrap();
    let template: Value = serde_yaml::from_str(&text).unwrap();
    let mut granted = BTreeMap::new();
    for (id, resource) in template["Resources"].as_mapping().unwrap() {
        if resource["Type"] != "AWS::Serverless::Function" {
            continue;
        }
        let mut grants = Grants::new();
        for policy in resource["Properties"]["Policies"]
            .as_sequence()
            .into_iter()
            .flatten()
        {
            for statement in policy["Statement"].as_sequence().unwrap() {
                let Some(statement) = unconditional(statement) else {
                    continue;
                };
                assert_eq!(statement["Effect"], "Allow");
                for action in strings(&statement["Action"]) {
                    if !action.starts_with("dynamodb:") {
                        continue;
                    }
                    for resource in one_or_many(&statement["Resource"]) {
                        grants.insert((action.clone(), table_of(resource)));
                    }
                }
            }
        }
        granted.insert(id.as_str().unwrap().to_owned(), grants);
    }
    granted
}

/// A statement, or the statement an `!If [condition, statement, NoValue]`
/// grants when its condition holds.
fn unconditional(statement: &Value) -> Option<&Value> {
    match statement {
        Value::Tagged(tagged) if tagged.tag == "If" => {
            let branches = tagged.value.as_sequence().unwrap();
            Some(&branches[1])
        }
        other => Some(other),
    }
}

fn one_or_many(value: &Value) -> Vec<&Value> {
    match value {
        Value::Sequence(items) => items.iter().collect(),
        other => vec![other],
    }
}

fn strings(value: &Value) -> Vec<String> {
    one_or_many(value)
        .into_iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

/// The table logical id of `!GetAtt XTable.Arn`.
fn table_of(resource: &Value) -> String {
    match resource {
        Value::Tagged(tagged) if tagged.tag == "GetAtt" => {
            let target = tagged.value.as_str().unwrap();
            target
                .strip_suffix(".Arn")
                .unwrap_or_else(|| panic!("{target}: grant on the table itself"))
                .to_owned()
        }
        other => panic!("a DynamoDB grant on {other:?}: expected !GetAtt <Table>.Arn"),
    }
}

#[tokio::test]
async fn every_function_is_granted_exactly_the_dynamodb_access_it_uses() {
    let needed = needed().await;
    let granted = granted();
    for (function, needs) in &needed {
        let grants = granted
            .get(*function)
            .unwrap_or_else(|| panic!("{function} is not in the template"));
        let missing: Vec<_> = needs.difference(grants).collect();
        assert!(
            missing.is_empty(),
            "{function} calls without a grant (AccessDenied in AWS): {missing:?}"
        );
        let unused: Vec<_> = grants.difference(needs).collect();
        assert!(
            unused.is_empty(),
            "{function} is granted what no code path uses: {unused:?}"
        );
    }
    // Every function with a DynamoDB grant was exercised above.
    for (function, grants) in &granted {
        assert!(
            grants.is_empty() || needed.contains_key(function.as_str()),
            "{function} has grants this test does not exercise"
        );
    }
}
