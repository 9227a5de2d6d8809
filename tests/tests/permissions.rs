//! The IAM grants in `template.yaml` against what the code really sends.
//!
//! Locally nothing enforces IAM, so a missing grant would pass every other
//! test and fail in AWS with AccessDenied. Each function's code paths run
//! here against DynamoDB Local with an interceptor recording every access
//! they need: (action, table, kind of item); the template must grant
//! exactly that set: nothing missing, and nothing no code path uses (least
//! privilege). The kind of item is what IAM's `dynamodb:LeadingKeys` tells
//! apart (the signing key from an account, a name's failed logins from its
//! credentials), so a grant scoped by it is held to the code too, and so is
//! a grant limited to some attributes (`dynamodb:Attributes`).

use chat_core::credits::Credits;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use api_tests::calls::{counted_app, Access, CallLog};
use api_tests::converse_stub::{Answer, ConverseStub};
use api_tests::*;
use chat_core::App;
use chat_model::ModelConfig;
use devtools::dynamodb_local::{quiet_app, repo_root};
use devtools::tables::TABLES;
use serde_yaml::Value;

/// (action, resource, kind of item): the resource is the logical id of a
/// table (or index), or the tail of a model's ARN
/// (`foundation-model/${ModelId}`); the kind is one of [`KINDS`] for the
/// users and credentials tables, empty elsewhere.
type Grant = (String, String, String);
type Grants = BTreeSet<Grant>;

/// What a function needs, by function and by the template condition under
/// which it does (`None`: always; `Some("HasModel")`: with a model; ...).
type ByFunction = BTreeMap<(String, Option<String>), Grants>;

/// Every access a function made, with its grant, for the attribute checks.
type Seen = BTreeMap<String, Vec<(Grant, Access)>>;

const MODEL_GRANT: (&str, &str) = ("bedrock:InvokeModel", "foundation-model/${ModelId}");
const STREAM_GRANT: (&str, &str) = (
    "bedrock:InvokeModelWithResponseStream",
    "foundation-model/${ModelId}",
);
const WITH_MODEL: Option<&str> = Some("HasModel");
/// Bedrock is granted when a model is called: `ModelId`'s, as here, or a
/// catalog's (whose grant tests/tests/template.rs holds).
const CALLS_BEDROCK: Option<&str> = Some("CallsBedrock");
const ALWAYS: Option<&str> = None;

/// With a catalog, which alone names embedding models (a Bedrock one's
/// hold is closed in the chats table), and with the catalog's grants.
const WITH_CATALOG: Option<&str> = Some("HasCatalog");
const CATALOG_GRANTS: Option<&str> = Some("HasCatalogGrants");
/// The embeddings function's grant: InvokeModel on the catalog's models.
const EMBEDDING_GRANT: (&str, &str) = ("bedrock:InvokeModel", "CatalogBedrockModelArns");

/// The conditions a grant may depend on.
const CONDITIONS: [&str; 5] = [
    "HasModel",
    "CallsBedrock",
    "InviteOnly",
    "HasCatalog",
    "HasCatalogGrants",
];

/// The kinds of item in the tables whose items differ by partition key:
/// (table, kind, a key of that kind as `dynamodb:LeadingKeys` sees it). The
/// first kind whose prefix a key has is its kind; the last of each table
/// (no `~`) is the per-user item.
const KINDS: &[(&str, &str, &str)] = &[
    ("UsersTable", "signing-key", "~token-signing-key"),
    ("UsersTable", "account", "alice"),
    ("CredentialsTable", "login-failures", "~login#alice"),
    (
        "CredentialsTable",
        "source-counts",
        "~ip#login#203.0.113.7#30000000",
    ),
    ("CredentialsTable", "invite", "~invite#0f1e2d"),
    ("CredentialsTable", "credentials", "alice"),
];

/// The kind of the item keyed `key` in `resource`; empty where the table's
/// items are not told apart.
fn kind_of(resource: &str, key: Option<&str>) -> String {
    let kinds: Vec<_> = KINDS
        .iter()
        .filter(|(table, ..)| *table == resource)
        .collect();
    if kinds.is_empty() {
        return String::new();
    }
    let key = key.unwrap_or_else(|| panic!("an access to {resource} without a key"));
    let prefix = |sample: &str| match sample.find('#') {
        Some(at) => sample[..=at].to_owned(),
        None => sample.to_owned(),
    };
    kinds
        .iter()
        .find(|(_, _, sample)| sample.starts_with('~') && key.starts_with(&prefix(sample)))
        .or_else(|| kinds.iter().find(|(_, _, sample)| !sample.starts_with('~')))
        .map(|(_, kind, _)| kind.to_string())
        .unwrap()
}

/// What each function needs, from its runs.
async fn needed() -> (ByFunction, Seen) {
    let (mut app, calls) = counted_app().await;
    // Every limit on, so its writes are seen: the per-source counts of
    // register and login.
    app.config.source_limits = chat_core::config::SourceLimits {
        login_checks_per_minute: 100,
        registrations_per_hour: 100,
    };
    let app = quiet_app(app.config.clone(), app.store.client().clone());
    let mut needed = ByFunction::new();
    let mut seen = Seen::new();
    let mut record = |function: &str, app: &App, calls: &CallLog, condition: Option<&str>| {
        for access in calls.take_accesses() {
            let resource = logical_id(app, &access.table);
            let kind = kind_of(&resource, access.leading_key.as_deref());
            let grant = (access.action.clone(), resource, kind);
            needed
                .entry((function.to_owned(), condition.map(str::to_owned)))
                .or_default()
                .insert(grant.clone());
            seen.entry(function.to_owned())
                .or_default()
                .push((grant, access));
        }
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
    let shared = sharing(&app);
    shared.auth.warm_up().await;
    for stream in [false, true] {
        let body = serde_json::json!({"model": "dummy", "stream": stream, "input": "hi"});
        let answer = api_tests::completion::respond(&shared, &token, None, &body).await;
        assert_eq!(answer.status, 200);
    }
    record("ResponsesFunction", &shared, &calls, ALWAYS);
    // Embeddings with the local embedder (a deployment without a catalog):
    // charged and saved in one transaction, keyed, replayed.
    let mut local = cold_start(&app).await;
    local.models = local.models.clone().with_embedding(
        chat_model::local_embedding(local.config.pricing)
            .into_iter()
            .collect(),
    );
    for key in [None, Some("e"), Some("e")] {
        let body = serde_json::json!({"model": "dummy-embedding", "input": ["a", "b"]});
        let mut request = with_auth(with_body(event("embeddings"), &body.to_string()), &token);
        if let Some(key) = key {
            request
                .headers_mut()
                .insert("idempotency-key", key.parse().unwrap());
        }
        let response = embeddings::handle(&local, request).await.unwrap();
        assert_eq!(response.status(), 200);
    }
    record("EmbeddingsFunction", &local, &calls, ALWAYS);

    let app = cold_start(&app).await;
    let list = models::handle(
        &app,
        &[chat_core::openai::ListedModel {
            id: "dummy".to_owned(),
            pricing: chat_core::pricing::Pricing::Flat(100),
            kind: chat_core::catalog::ModelKind::Chat,
        }],
        with_auth(event("models"), &token),
    )
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
    let threshold = balance::handle(&app, with_auth(event("balance-alert"), &token))
        .await
        .unwrap();
    assert_eq!(threshold.status(), 200);
    record("BalanceFunction", &app, &calls, ALWAYS);

    let app = cold_start(&app).await;

    let page = history::handle(&app, with_auth(event("history"), &token))
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    record("HistoryFunction", &app, &calls, ALWAYS);

    let app = cold_start(&app).await;

    let usage = usage::handle(&app, with_auth(event("history"), &token))
        .await
        .unwrap();
    assert_eq!(usage.status(), 200);
    record("UsageFunction", &app, &calls, ALWAYS);

    // With a model: the read before the model, keyed and not, and the
    // model itself.
    let stub = ConverseStub::start(Answer::text("from the model"));
    let mut paid = cold_start(&app).await;
    paid.models = chat_core::served::Models::only(
        Arc::new(stub.responder(ModelConfig::new("test-model"))),
        paid.config.pricing,
    );
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
    paid.models = chat_core::served::Models::only(
        Arc::new(failing.responder(ModelConfig::new("test-model"))),
        paid.config.pricing,
    );
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
    completing.models = chat_core::served::Models::only(
        Arc::new(streaming.responder(ModelConfig::new("test-model"))),
        completing.config.pricing,
    );
    let completing = sharing(&completing);
    completing.auth.warm_up().await;
    calls.take();
    for status in [200, 502] {
        let body = serde_json::json!({
            "model": "test-model",
            "stream": true,
            "messages": [{"role": "user", "content": "hi"}],
        });
        // With a key, so the refusal forgets its marker too.
        let key = format!("completion {status}");
        let answer = api_tests::completion::complete_keyed(&completing, &token, &key, &body).await;
        assert_eq!(answer.status, status);
    }
    record("CompletionsFunction", &completing, &calls, WITH_MODEL);

    // The Responses route with a model, the same way.
    let responding = ConverseStub::scripted(|n| match n {
        0 => Answer::text("streamed"),
        _ => Answer::error(400, "ValidationException"),
    });
    let mut answering = cold_start(&paid).await;
    answering.models = chat_core::served::Models::only(
        Arc::new(responding.responder(ModelConfig::new("test-model"))),
        answering.config.pricing,
    );
    let answering = sharing(&answering);
    answering.auth.warm_up().await;
    calls.take();
    for status in [200, 502] {
        let body = serde_json::json!({"model": "test-model", "stream": true, "input": "hi"});
        let key = format!("response {status}");
        let answer = api_tests::completion::respond(&answering, &token, Some(&key), &body).await;
        assert_eq!(answer.status, status);
    }
    record("ResponsesFunction", &answering, &calls, WITH_MODEL);

    // Embeddings from Bedrock (a catalog's): hold, InvokeModel, settle;
    // and a refusal's release, with a key so its marker is forgotten.
    let titan = ConverseStub::scripted(|n| match n {
        0 | 1 => Answer::embedding(3),
        _ => Answer::error(400, "ValidationException"),
    });
    let mut embedding = cold_start(&paid).await;
    embedding.models =
        embedding
            .models
            .clone()
            .with_embedding(vec![chat_core::served::EmbeddingModel {
                id: "titan".to_owned(),
                embedder: Arc::new(
                    titan.embedder(ModelConfig::new("amazon.titan-embed-text-v2:0")),
                ),
                pricing: chat_core::pricing::Pricing::Usage(chat_core::pricing::UsagePrices {
                    input_per_1000: 1000,
                    ..Default::default()
                }),
            }]);
    embedding.auth.warm_up().await;
    calls.take();
    for (key, status) in [("titan ok", 200), ("titan ok", 200), ("titan refused", 502)] {
        let input = if status == 200 {
            vec!["a", "b"]
        } else {
            vec!["c"]
        };
        let body = serde_json::json!({"model": "titan", "input": input});
        let mut request = with_auth(with_body(event("embeddings"), &body.to_string()), &token);
        request
            .headers_mut()
            .insert("idempotency-key", key.parse().unwrap());
        let response = embeddings::handle(&embedding, request).await.unwrap();
        assert_eq!(response.status(), status);
    }
    assert_eq!(titan.call_count(), 3);
    record("EmbeddingsFunction", &embedding, &calls, WITH_CATALOG);

    // The sweeper gives back a hold whose function died (taken here by
    // the store, as the chat function would).
    let sweeping = quiet_app(paid.config.clone(), paid.store.client().clone());
    let verified = sweeping
        .auth
        .verify(chat_core::domain::AuthToken::parse(&token).unwrap())
        .await
        .unwrap();
    // The refused one taken with an API key: its release gives back to the
    // key's budget, in the account's write.
    let created = keys::handle(
        &sweeping,
        with_auth(
            with_body(
                event("keys"),
                r#"{"name": "sweep", "budget": {"tokens": 1000, "period": "day"}}"#,
            ),
            &token,
        ),
    )
    .await
    .unwrap();
    assert_eq!(created.status(), 201);
    let api_key = json_of(&created)["key"].as_str().unwrap().to_owned();
    let key_verified = sweeping
        .auth
        .verify(chat_core::domain::AuthToken::parse(&api_key).unwrap())
        .await
        .unwrap();
    let now = chat_core::clock::Timestamp::now();
    // Two holds with keys: one whose function died (charged, its chat
    // saved, the key answered), one whose model refused and whose release
    // could not commit (given back, the key forgotten).
    let mut holds = Vec::new();
    for (name, verified) in [("dead", &verified), ("refused", &key_verified)] {
        let key = chat_core::domain::IdempotencyKey::parse(name)
            .unwrap()
            .bind(name.as_bytes());
        let taken = sweeping
            .store
            .take_hold(
                verified,
                &chat_core::store::HoldRequest {
                    amount: Credits::new(100),
                    message: &chat_core::domain::ChatMessage::parse(name.into()).unwrap(),
                    model: "dummy",
                    pricing: chat_core::pricing::Pricing::Flat(100),
                    key: Some(&key),
                    taken: now,
                    expires: now,
                },
                chat_core::deadline::Deadline::none(),
            )
            .await
            .unwrap();
        match taken {
            chat_core::store::HoldOutcome::Held(hold) => holds.push(hold),
            other => panic!("a hold: {other:?}"),
        }
    }
    assert!(sweeping.store.mark_refused(&holds[1]).await.unwrap());
    calls.take();
    let later = now.plus(std::time::Duration::from_secs(5));
    let swept = sweeper::sweep(&sweeping, later, chat_core::deadline::Deadline::none())
        .await
        .unwrap();
    assert_eq!((swept.charged_at_bound, swept.released), (1, 1));
    record("SweeperFunction", &sweeping, &calls, ALWAYS);

    let paid = cold_start(&paid).await;
    let response = logout::handle(&paid, with_auth(event("logout"), &token))
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    record("LogoutFunction", &paid, &calls, ALWAYS);
    // The stand-in is no IAM check: the model's calls are needed as made,
    // Converse as InvokeModel, ConverseStream as its streaming twin.
    assert!(stub.call_count() > 0);
    for call in stub.calls() {
        let grant = if call.streamed {
            STREAM_GRANT
        } else {
            MODEL_GRANT
        };
        needed
            .entry(("ChatFunction".to_owned(), CALLS_BEDROCK.map(str::to_owned)))
            .or_default()
            .insert((grant.0.to_owned(), grant.1.to_owned(), String::new()));
    }
    assert!(streaming.call_count() > 0 && responding.call_count() > 0);
    // Titan's embeddings are InvokeModel, on the catalog's models.
    assert!(titan.calls().iter().all(|call| !call.streamed));
    needed
        .entry((
            "EmbeddingsFunction".to_owned(),
            CATALOG_GRANTS.map(str::to_owned),
        ))
        .or_default()
        .insert((
            EMBEDDING_GRANT.0.to_owned(),
            EMBEDDING_GRANT.1.to_owned(),
            String::new(),
        ));
    for function in ["CompletionsFunction", "ResponsesFunction"] {
        needed
            .entry((function.to_owned(), CALLS_BEDROCK.map(str::to_owned)))
            .or_default()
            .insert((
                STREAM_GRANT.0.to_owned(),
                STREAM_GRANT.1.to_owned(),
                String::new(),
            ));
    }
    // The alerts function calls EventBridge alone (Lambda reads the stream
    // for it): what its publisher sends, to the bus it is given.
    let (client, sent) = api_tests::eventbridge::eventbridge();
    let publisher = alerts::EventBridge::new(client, ALERT_BUS);
    let text = std::fs::read_to_string(events_dir().join("alerts-stream.json")).unwrap();
    alerts::handle(&publisher, serde_json::from_str(&text).unwrap())
        .await
        .unwrap();
    assert!(!sent.calls().is_empty());
    for (operation, body) in sent.calls() {
        for entry in body["Entries"].as_array().unwrap() {
            assert_eq!(entry["EventBusName"], ALERT_BUS, "only the stack's bus");
        }
        needed
            .entry(("AlertsFunction".to_owned(), None))
            .or_default()
            .insert((
                format!("events:{operation}"),
                "AlertsBus".to_owned(),
                String::new(),
            ));
    }
    (needed, seen)
}

/// The bus the alerts function is given (`ALERT_BUS: !Ref AlertsBus`).
const ALERT_BUS: &str = "stack-alerts";

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

/// A statement that limits what its requests may name and get back.
#[derive(Debug)]
struct AttributeRule {
    grants: Grants,
    /// `ForAllValues:StringEquals` on `dynamodb:Attributes`.
    attributes: BTreeSet<String>,
    /// `StringEqualsIfExists` on `dynamodb:ReturnValues`.
    return_values: BTreeSet<String>,
}

/// What each function's policies grant, by function and by the template
/// condition a statement holds under (`!If [Condition, statement,
/// NoValue]`), and the attribute rules among them, by function.
fn granted() -> (ByFunction, BTreeMap<String, Vec<AttributeRule>>) {
    let text = std::fs::read_to_string(repo_root().join("template.yaml")).unwrap();
    let template: Value = serde_yaml::from_str(&text).unwrap();
    let mut granted = ByFunction::new();
    let mut rules: BTreeMap<String, Vec<AttributeRule>> = BTreeMap::new();
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
                let scope = Scope::of(&statement["Condition"]);
                let mut grants = Grants::new();
                for action in strings(&statement["Action"]) {
                    for resource in one_or_many(&statement["Resource"]) {
                        let resource = resource_of(&action, resource);
                        for kind in scope.kinds(&resource) {
                            grants.insert((action.clone(), resource.clone(), kind));
                        }
                    }
                }
                granted
                    .entry((id.clone(), condition))
                    .or_default()
                    .extend(grants.iter().cloned());
                if let Some(attributes) = scope.attributes {
                    rules.entry(id.clone()).or_default().push(AttributeRule {
                        grants,
                        attributes,
                        return_values: scope.return_values,
                    });
                }
            }
        }
    }
    (granted, rules)
}

/// What a statement's `Condition` limits, of the condition keys this
/// project uses; any other is refused, so none is silently ignored.
#[derive(Default)]
struct Scope {
    /// (operator, values) on `dynamodb:LeadingKeys`.
    leading_keys: Option<(String, Vec<String>)>,
    attributes: Option<BTreeSet<String>>,
    return_values: BTreeSet<String>,
}

impl Scope {
    fn of(condition: &Value) -> Self {
        let mut scope = Scope::default();
        for (operator, keys) in condition.as_mapping().into_iter().flatten() {
            let operator = operator.as_str().unwrap();
            for (key, values) in keys.as_mapping().unwrap() {
                let values = strings(values);
                match (operator, key.as_str().unwrap()) {
                    (
                        "ForAllValues:StringEquals"
                        | "ForAllValues:StringLike"
                        | "ForAllValues:StringNotLike",
                        "dynamodb:LeadingKeys",
                    ) => scope.leading_keys = Some((operator.to_owned(), values)),
                    ("ForAllValues:StringEquals", "dynamodb:Attributes") => {
                        scope.attributes = Some(values.into_iter().collect())
                    }
                    ("StringEqualsIfExists", "dynamodb:ReturnValues") => {
                        scope.return_values = values.into_iter().collect()
                    }
                    (operator, key) => {
                        panic!("a condition this test cannot read: {operator} {key}")
                    }
                }
            }
        }
        scope
    }

    /// The kinds of item in `resource` the statement reaches.
    fn kinds(&self, resource: &str) -> Vec<String> {
        let kinds: Vec<_> = KINDS
            .iter()
            .filter(|(table, ..)| *table == resource)
            .collect();
        let Some((operator, patterns)) = &self.leading_keys else {
            return match kinds.is_empty() {
                true => vec![String::new()],
                false => kinds.iter().map(|(_, kind, _)| kind.to_string()).collect(),
            };
        };
        assert!(!kinds.is_empty(), "a LeadingKeys condition on {resource}");
        kinds
            .into_iter()
            .filter(|(_, _, sample)| {
                let like = |pattern: &String| glob(pattern, sample);
                match operator.as_str() {
                    "ForAllValues:StringEquals" => patterns.iter().any(|p| p == sample),
                    "ForAllValues:StringLike" => patterns.iter().any(like),
                    _ => !patterns.iter().any(like),
                }
            })
            .map(|(_, kind, _)| kind.to_string())
            .collect()
    }
}

/// IAM's `StringLike`: `*` any run of characters, `?` any one.
fn glob(pattern: &str, text: &str) -> bool {
    match pattern.chars().next() {
        None => text.is_empty(),
        Some('*') => (0..=text.len())
            .filter(|at| text.is_char_boundary(*at))
            .any(|at| glob(&pattern[1..], &text[at..])),
        Some(c) => {
            text.chars().next().is_some_and(|t| c == '?' || c == t)
                && glob(
                    &pattern[c.len_utf8()..],
                    &text[text.chars().next().unwrap().len_utf8()..],
                )
        }
    }
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
    // A model's grant is `!If [HasCatalog, the catalog's ARNs, ModelId's]`:
    // this test's deployment names one model (ModelId).
    if let Value::Tagged(tagged) = resource {
        if tagged.tag == "If" && action.starts_with("bedrock:") {
            let branches = tagged.value.as_sequence().unwrap();
            assert_eq!(branches[0].as_str(), Some("HasCatalog"), "{action}");
            return resource_of(action, &branches[2]);
        }
    }
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
        // `!Ref CatalogBedrockModelArns`: the catalog's models, by name.
        (Some("bedrock"), "Ref") => text.to_owned(),
        // `!GetAtt AlertsBus.Arn`: the stack's own event bus.
        (Some("events"), "GetAtt") => text
            .strip_suffix(".Arn")
            .unwrap_or_else(|| panic!("{text}: a grant on the bus itself"))
            .to_owned(),
        (_, tag) => panic!("{action} on !{tag} {text}: not a grant this test knows"),
    }
}

#[tokio::test]
async fn every_function_is_granted_exactly_what_it_uses() {
    let (needed, seen) = needed().await;
    let (granted, rules) = granted();
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
    // A grant limited to some attributes: every request it covers names
    // only those and asks for nothing else back, and it names each of them.
    for (function, rules) in &rules {
        for rule in rules {
            let covered: Vec<&Access> = seen[function]
                .iter()
                .filter(|(grant, _)| rule.grants.contains(grant))
                .map(|(_, access)| access)
                .collect();
            let mut named = BTreeSet::new();
            for access in &covered {
                let beyond: Vec<_> = access.attributes.difference(&rule.attributes).collect();
                assert!(
                    beyond.is_empty(),
                    "{function}: {} names {beyond:?} beyond its grant",
                    access.action
                );
                named.extend(access.attributes.iter().cloned());
                if let Some(values) = &access.return_values {
                    assert!(rule.return_values.contains(values), "{function}: {values}");
                }
                assert!(
                    access
                        .return_on_failure
                        .as_deref()
                        .is_none_or(|v| v == "NONE"),
                    "{function}: a refusal would hand back the whole item"
                );
            }
            assert_eq!(
                named, rule.attributes,
                "{function}: attributes granted, unused"
            );
        }
    }
}

/// The grants of `function` that write the signing key's item.
fn key_writes(granted: &ByFunction, function: &str) -> Vec<Grant> {
    granted
        .iter()
        .filter(|((id, _), _)| id == function)
        .flat_map(|(_, grants)| grants.iter().cloned())
        .filter(|(action, resource, kind)| {
            resource == "UsersTable" && kind == "signing-key" && action != "dynamodb:GetItem"
        })
        .collect()
}

#[test]
fn no_function_but_login_can_write_the_signing_key_and_the_sweeper_only_a_balance() {
    let (granted, rules) = granted();
    let functions: BTreeSet<&String> = granted.keys().map(|(id, _)| id).collect();
    for function in functions {
        let writes = key_writes(&granted, function);
        if function == "LoginFunction" {
            // The first login of a deployment stores the first key with a
            // conditional put; rotation is the operator's (chat-ops).
            let put = (
                "dynamodb:PutItem".to_owned(),
                "UsersTable".to_owned(),
                "signing-key".to_owned(),
            );
            assert_eq!(writes, [put], "{function}");
        } else {
            assert!(
                writes.is_empty(),
                "{function} can write the signing key: {writes:?}"
            );
        }
    }
    // The sweeper settles holds: of an account it may touch the balance,
    // the version, the count of open model calls and the API keys' entries
    // (a released hold gives back to its key's budget), and nothing else,
    // nor read the item back.
    let sweeper = &rules["SweeperFunction"];
    let on_accounts: Vec<_> = sweeper
        .iter()
        .filter(|rule| {
            rule.grants
                .iter()
                .any(|(_, resource, _)| resource == "UsersTable")
        })
        .collect();
    assert_eq!(on_accounts.len(), 1);
    let rule = on_accounts[0];
    assert_eq!(
        rule.attributes,
        ["api_keys", "open_calls", "tokens", "username", "version"]
            .map(str::to_owned)
            .into()
    );
    assert!(!rule.return_values.iter().any(|v| v.starts_with("ALL_")));
    assert!(rule.grants.iter().all(|(_, _, kind)| kind == "account"));
}

/// X-Ray is the one grant SAM adds by itself: AWS's managed X-Ray write
/// policy, on the role of every function whose `Tracing` is anything but
/// `Disabled` (PassThrough too). So the parameter's off value is
/// `Disabled`, every function takes it from the Globals, and no statement
/// of ours grants X-Ray: a role can send traces exactly when `Tracing` is
/// `Active`, and the REST API traces under the same condition.
#[test]
fn x_ray_is_granted_exactly_when_tracing_is_active() {
    let text = std::fs::read_to_string(repo_root().join("template.yaml")).unwrap();
    let template: Value = serde_yaml::from_str(&text).unwrap();
    let yaml = |value: &Value| serde_yaml::to_string(value).unwrap().trim().to_owned();
    let tracing = &template["Parameters"]["Tracing"];
    assert_eq!(tracing["Default"], "Disabled");
    assert_eq!(yaml(&tracing["AllowedValues"]), "- Disabled\n- Active");
    assert_eq!(
        yaml(&template["Globals"]["Function"]["Tracing"]),
        "!Ref Tracing"
    );
    assert_eq!(
        yaml(&template["Conditions"]["Traced"]),
        "!Equals\n- !Ref Tracing\n- Active"
    );
    for (id, resource) in template["Resources"].as_mapping().unwrap() {
        if resource["Type"] != "AWS::Serverless::Function" {
            continue;
        }
        let properties = &resource["Properties"];
        assert!(
            properties["Tracing"].is_null(),
            "{id:?} sets Tracing apart from the parameter"
        );
        assert!(
            !yaml(&properties["Policies"])
                .to_ascii_lowercase()
                .contains("xray"),
            "{id:?} grants X-Ray itself"
        );
    }
    assert_eq!(
        yaml(&template["Resources"]["OpenAiApi"]["Properties"]["TracingEnabled"]),
        "!If\n- Traced\n- true\n- false"
    );
}
