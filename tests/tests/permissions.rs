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
use chat_core::App;
use chat_model::ModelConfig;
use devtools::dynamodb_local::{quiet_app, repo_root};
use devtools::tables::TABLES;
use serde_yaml::Value;

/// (action, resource): the logical id of a table, or the tail of a model's
/// ARN (`foundation-model/${ModelId}`).
type Grants = BTreeSet<(String, String)>;

/// What a function needs, by function and by the template condition under
/// which it does (`None`: always; `Some("HasModel")`: with a model; ...).
type ByFunction = BTreeMap<(String, Option<String>), Grants>;

const MODEL_GRANT: (&str, &str) = ("bedrock:InvokeModel", "foundation-model/${ModelId}");
const STREAM_GRANT: (&str, &str) = (
    "bedrock:InvokeModelWithResponseStream",
    "foundation-model/${ModelId}",
);
const WITH_MODEL: Option<&str> = Some("HasModel");
const ALWAYS: Option<&str> = None;

/// The conditions a grant may depend on.
const CONDITIONS: [&str; 2] = ["HasModel", "InviteOnly"];

/// What each function needs, from its runs.
async fn needed() -> ByFunction {
    let (mut app, calls) = counted_app().await;
    // Every limit on, so its writes are seen: the per-source counts of
    // register and login.
    app.config.source_limits = chat_core::config::SourceLimits {
        login_checks_per_minute: 100,
        registrations_per_hour: 100,
    };
    let app = quiet_app(app.config.clone(), app.store.client().clone());
    let mut needed = ByFunction::new();
    let mut record = |function: &str, app: &App, calls: &CallLog, condition: Option<&str>| {
        let by_logical_id: Grants = calls
            .take_accesses()
            .into_iter()
            .map(|(action, table)| (action, logical_id(app, &table)))
            .collect();
        needed
            .entry((function.to_owned(), condition.map(str::to_owned)))
            .or_default()
            .extend(by_logical_id);
    };

    assert_eq!(register(&app, "alice").await.status(), 201);
    assert_eq!(register(&app, "alice").await.status(), 409);
    record("RegisterFunction", &app, &calls, ALWAYS);

    // With invites: the code is spent in the registering transaction.
    let mut inviting = quiet_app(app.config.clone(), app.store.client().clone());
    inviting.config.registration = chat_core::config::Registration::Invite;
    let code = inviting
        .store
        .create_invite("", chat_core::clock::Timestamp::now())
        .await
        .unwrap();
    calls.take();
    let body = serde_json::json!({"username": "invited", "password": PASSWORD, "invite": code});
    let response = register::handle(&inviting, with_body(event("register"), &body.to_string()))
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    record("RegisterFunction", &inviting, &calls, Some("InviteOnly"));

    // Each function below starts cold, as in Lambda: it reads the signing
    // key, and the first login of a deployment also stores it.
    let app = cold_start(&app).await;
    let token = logged_in(&app, "alice").await;
    assert_eq!(
        login_with(&app, "alice", "wrong-password").await.status(),
        401
    );
    assert_eq!(
        login_with(&app, "nobody", "wrong-password").await.status(),
        401
    );
    // A login that gets in after a failure forgets the failures.
    assert_eq!(login_with(&app, "alice", PASSWORD).await.status(), 200);
    record("LoginFunction", &app, &calls, ALWAYS);

    let app = cold_start(&app).await;

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
    record("ChatFunction", &app, &calls, ALWAYS);

    // The OpenAI route with the dummy, streamed and not, and the list.
    let app = cold_start(&app).await;
    let shared = sharing(&app);
    shared.auth.warm_up().await;
    for stream in [false, true] {
        let body = serde_json::json!({
            "model": "dummy",
            "stream": stream,
            "messages": [{"role": "user", "content": "hi"}],
        });
        let answer = api_tests::completion::complete(&shared, &token, body).await;
        assert_eq!(answer.status, 200);
    }
    record("CompletionsFunction", &shared, &calls, ALWAYS);
    let app = cold_start(&app).await;
    let list = models::handle(&app, "dummy", with_auth(event("models"), &token))
        .await
        .unwrap();
    assert_eq!(list.status(), 200);
    record("ModelsFunction", &app, &calls, ALWAYS);

    // API keys: made, listed, used, revoked; and one that logs out.
    let app = cold_start(&app).await;
    let created = keys::handle(&app, with_auth(event("keys"), &token))
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let key_id = json_of(&created)["id"].as_str().unwrap().to_owned();
    let listed = keys::handle(&app, with_auth(event("keys-list"), &token))
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);
    let mut delete = with_auth(event("keys-delete-unknown"), &token);
    *delete.uri_mut() = format!("/keys/{key_id}").parse().unwrap();
    assert_eq!(keys::handle(&app, delete).await.unwrap().status(), 204);
    let second = keys::handle(&app, with_auth(event("keys"), &token))
        .await
        .unwrap();
    let api_key = json_of(&second)["key"].as_str().unwrap().to_owned();
    record("KeysFunction", &app, &calls, ALWAYS);
    let app = cold_start(&app).await;
    let response = logout::handle(&app, with_auth(event("logout"), &api_key))
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    record("LogoutFunction", &app, &calls, ALWAYS);

    let app = cold_start(&app).await;

    assert_eq!(balance_as(&app, &token).await.status(), 200);
    record("BalanceFunction", &app, &calls, ALWAYS);

    let app = cold_start(&app).await;

    let page = history::handle(&app, with_auth(event("history"), &token))
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    record("HistoryFunction", &app, &calls, ALWAYS);

    // With a model: the read before the model, keyed and not, and the
    // model itself.
    let stub = ConverseStub::start(Answer::text("from the model"));
    let mut paid = cold_start(&app).await;
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
    record("ChatFunction", &paid, &calls, WITH_MODEL);

    // A model that fails: the hold is given back and the key forgotten.
    let failing = ConverseStub::start(Answer::error(400, "ValidationException"));
    paid.responder = Arc::new(failing.responder(ModelConfig::new("test-model")));
    assert_eq!(
        keyed_chat_as(&paid, &token, "f", "fails").await.status(),
        502
    );
    record("ChatFunction", &paid, &calls, WITH_MODEL);

    // The OpenAI route with a model: hold, stream, settle; and a release.
    let streaming = ConverseStub::scripted(|n| match n {
        0 => Answer::text("streamed"),
        _ => Answer::error(400, "ValidationException"),
    });
    let mut completing = cold_start(&paid).await;
    completing.responder = Arc::new(streaming.responder(ModelConfig::new("test-model")));
    let completing = sharing(&completing);
    completing.auth.warm_up().await;
    calls.take();
    for status in [200, 502] {
        let body = serde_json::json!({
            "model": "test-model",
            "stream": true,
            "messages": [{"role": "user", "content": "hi"}],
        });
        let answer = api_tests::completion::complete(&completing, &token, body).await;
        assert_eq!(answer.status, status);
    }
    record("CompletionsFunction", &completing, &calls, WITH_MODEL);

    // The sweeper gives back a hold whose function died (taken here by
    // the store, as the chat function would).
    let sweeping = quiet_app(paid.config.clone(), paid.store.client().clone());
    let verified = sweeping
        .auth
        .verify(chat_core::domain::AuthToken::parse(&token).unwrap())
        .await
        .unwrap();
    let now = chat_core::clock::Timestamp::now();
    let key = chat_core::domain::IdempotencyKey::parse("dead").unwrap();
    let message = chat_core::domain::ChatMessage::parse("dead".into()).unwrap();
    sweeping
        .store
        .take_hold(
            &verified,
            &chat_core::store::HoldRequest {
                message: &message,
                amount: 100,
                key: Some(&key),
                taken: now,
                expires: now,
            },
            chat_core::deadline::Deadline::none(),
        )
        .await
        .unwrap();
    calls.take();
    let later = now.plus(std::time::Duration::from_secs(5));
    let swept = sweeper::sweep(&sweeping, later, chat_core::deadline::Deadline::none())
        .await
        .unwrap();
    assert_eq!(swept.released, 1);
    record("SweeperFunction", &sweeping, &calls, ALWAYS);

    let paid = cold_start(&paid).await;
    let response = logout::handle(&paid, with_auth(event("logout"), &token))
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    record("LogoutFunction", &paid, &calls, ALWAYS);
    // The stand-in is no IAM check: the model's call is needed by count.
    assert!(stub.call_count() > 0);
    needed
        .entry(("ChatFunction".to_owned(), WITH_MODEL.map(str::to_owned)))
        .or_default()
        .insert((MODEL_GRANT.0.to_owned(), MODEL_GRANT.1.to_owned()));
    assert!(streaming.call_count() > 0);
    needed
        .entry((
            "CompletionsFunction".to_owned(),
            WITH_MODEL.map(str::to_owned),
        ))
        .or_default()
        .insert((STREAM_GRANT.0.to_owned(), STREAM_GRANT.1.to_owned()));
    needed
}

/// The same function's state after a cold start: a new [`App`] on the same
/// (counting) client and tables, which has read the signing key, as every
/// function's `main` but register's does.
async fn cold_start(app: &App) -> App {
    let cold = quiet_app(app.config.clone(), app.store.client().clone());
    cold.auth.warm_up().await;
    cold
}

fn logical_id(app: &App, table: &str) -> String {
    let (table, index) = match table.split_once("/index/") {
        Some((table, index)) => (table, Some(index)),
        None => (table, None),
    };
    let id = TABLES
        .iter()
        .find(|spec| spec.name_in(app.store.tables()) == table)
        .unwrap_or_else(|| panic!("a call to a table of no known kind: {table}"))
        .logical_id;
    match index {
        Some(index) => format!("{id}/index/{index}"),
        None => id.to_owned(),
    }
}

/// What each function's policies grant, by function and by whether the
/// grant holds only with a model (`!If [HasModel, statement, NoValue]`).
fn granted() -> ByFunction {
    let text = std::fs::read_to_string(repo_root().join("template.yaml")).unwrap();
    let template: Value = serde_yaml::from_str(&text).unwrap();
    let mut granted = ByFunction::new();
    for (id, resource) in template["Resources"].as_mapping().unwrap() {
        if resource["Type"] != "AWS::Serverless::Function" {
            continue;
        }
        let id = id.as_str().unwrap().to_owned();
        granted.entry((id.clone(), None)).or_default();
        for policy in resource["Properties"]["Policies"]
            .as_sequence()
            .into_iter()
            .flatten()
        {
            for statement in policy["Statement"].as_sequence().unwrap() {
                let (statement, condition) = condition_of(statement);
                assert_eq!(statement["Effect"], "Allow");
                let grants = granted.entry((id.clone(), condition)).or_default();
                for action in strings(&statement["Action"]) {
                    for resource in one_or_many(&statement["Resource"]) {
                        grants.insert((action.clone(), resource_of(&action, resource)));
                    }
                }
            }
        }
    }
    granted
}

/// A statement and the condition it holds under, if any: an
/// `!If [Condition, statement, !Ref AWS::NoValue]`.
fn condition_of(statement: &Value) -> (&Value, Option<String>) {
    match statement {
        Value::Tagged(tagged) if tagged.tag == "If" => {
            let branches = tagged.value.as_sequence().unwrap();
            let condition = branches[0].as_str().unwrap();
            assert!(
                CONDITIONS.contains(&condition),
                "{condition}: not a condition a grant may depend on"
            );
            assert_eq!(
                serde_yaml::to_string(&branches[2]).unwrap().trim(),
                "!Ref AWS::NoValue",
                "a conditional grant is nothing when its condition is false"
            );
            (&branches[1], Some(condition.to_owned()))
        }
        other => (other, None),
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

/// A table's logical id for `!GetAtt XTable.Arn`; for a model, the tail
/// of its ARN (`!Sub arn:...::foundation-model/${ModelId}`).
fn resource_of(action: &str, resource: &Value) -> String {
    let Value::Tagged(tagged) = resource else {
        panic!("{action} on {resource:?}: expected !GetAtt or !Sub");
    };
    let text = tagged.value.as_str().unwrap();
    match (
        action.split(':').next(),
        tagged.tag.to_string().trim_start_matches('!'),
    ) {
        (Some("dynamodb"), "GetAtt") => text
            .strip_suffix(".Arn")
            .unwrap_or_else(|| panic!("{text}: a grant on the table itself"))
            .to_owned(),
        // `!Sub ${ChatsTable.Arn}/index/OpenHolds`: an index of a table.
        (Some("dynamodb"), "Sub") => text
            .strip_prefix("${")
            .and_then(|rest| rest.split_once(".Arn}/index/"))
            .map(|(table, index)| format!("{table}/index/{index}"))
            .unwrap_or_else(|| panic!("{text}: not an index ARN")),
        (Some("bedrock"), "Sub") => text.rsplit("::").next().unwrap().to_owned(),
        (_, tag) => panic!("{action} on !{tag} {text}: not a grant this test knows"),
    }
}

#[tokio::test]
async fn every_function_is_granted_exactly_what_it_uses() {
    let needed = needed().await;
    let granted = granted();
    let empty = Grants::new();
    for ((function, condition), grants) in &granted {
        // Under a condition a function needs what it always needs and
        // more; the conditional grants must be just the more.
        let always = needed.get(&(function.clone(), None)).unwrap_or(&empty);
        let wanted: Grants = match condition {
            Some(_) => {
                let with = needed
                    .get(&(function.clone(), condition.clone()))
                    .unwrap_or(&empty);
                with.difference(always).cloned().collect()
            }
            None => always.clone(),
        };
        let with_model = condition.as_deref().unwrap_or("always");
        let missing: Vec<_> = wanted.difference(grants).collect();
        assert!(
            missing.is_empty(),
            "{function} ({with_model}) calls without a grant (AccessDenied in AWS): {missing:?}"
        );
        let unused: Vec<_> = grants.difference(&wanted).collect();
        assert!(
            unused.is_empty(),
            "{function} ({with_model}) is granted what no code path uses: {unused:?}"
        );
    }
    for (function, _) in needed.keys() {
        assert!(
            granted.contains_key(&(function.clone(), None)),
            "{function} is not in the template"
        );
    }
    // Every function with a grant was exercised above.
    for ((function, _), grants) in &granted {
        assert!(
            grants.is_empty() || needed.contains_key(&(function.clone(), None)),
            "{function} has grants this test does not exercise"
        );
    }
}
