//! `openapi.yaml` held to the code in both directions, so neither can drift:
//!
//! - every response the spec documents (each operation's statuses and
//!   error codes, and the fallback's 404 and 405) is produced here by a real
//!   request to the real handler, DynamoDB Local and a stand-in model behind
//!   it, and each response is validated against the spec: a documented
//!   status, the body against its schema, every documented header present
//!   and valid, no undocumented header;
//! - every operation is a route in `chat_core::routes::ROUTES` and every
//!   route an operation; every error code in the spec is one `ApiError`
//!   produces and every `ApiError` is in the spec, with its status and
//!   headers.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use api_tests::converse_stub::{Answer, ConverseStub};
use api_tests::openapi::{Observed, Spec, Target};
use api_tests::*;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use chat::model::ModelConfig;
use chat_core::config::DEFAULT_INITIAL_TOKENS;
use chat_core::domain::{AuthToken, ChatMessage, IdempotencyKey, Password, Username};
use chat_core::local::{client, client_with_production_timeouts, free_port, quiet_app, repo_root};
use chat_core::responder::DummyResponder;
use chat_core::routes::ROUTES;
use chat_core::store::Cursor;
use chat_core::{ApiError, App, Config, Tables};
use lambda_http::http::Method;
use lambda_http::{Body, Request, Response};
use serde_json::{json, Value};

/// Responses the spec documents that no request in this file produces, each
/// with the reason; each must stay documented and unproduced (or leave this
/// list). Empty: 500 and 503 come from apps whose DynamoDB is missing its
/// tables or refuses connections, and 502 and the model's 503 from a
/// stand-in model. Shape: (target, status, error code or "" for a success).
const DOCUMENTED_ONLY: &[(&str, u16, &str, &str)] = &[];

fn spec() -> Spec {
    let path = repo_root().join("openapi.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Spec::new(serde_yaml::from_str(&text).expect("openapi.yaml is YAML"))
}

const fn operation<'a>(method: &'a str, path: &'a str) -> Target<'a> {
    Target::Operation { method, path }
}

const REGISTER: Target<'static> = operation("POST", "/register/");
const LOGIN: Target<'static> = operation("POST", "/login/");
const CHAT: Target<'static> = operation("POST", "/chat/");
const CHATS: Target<'static> = operation("GET", "/chats/");
const BALANCE: Target<'static> = operation("GET", "/balance/");
const LOGOUT: Target<'static> = operation("POST", "/logout/");

/// Every (target, status, error code) the spec documents; "" as the code
/// of a response that is not an error.
fn documented(spec: &Spec) -> BTreeSet<(String, u16, String)> {
    let operations = spec.operations();
    let mut targets: Vec<Target<'_>> = operations
        .iter()
        .map(|(method, path)| operation(method, path))
        .collect();
    targets.push(Target::Fallback);
    let mut all = BTreeSet::new();
    for target in targets {
        for (status, response) in spec.responses(target) {
            let status: u16 = status
                .parse()
                .unwrap_or_else(|_| panic!("{target}: {status} is not a status code"));
            let codes = spec.error_codes(spec.resolve(response));
            if codes.is_empty() {
                all.insert((target.to_string(), status, String::new()));
            }
            for code in codes {
                all.insert((target.to_string(), status, code));
            }
        }
    }
    all
}

/// The requests sent so far and what each produced, each response checked
/// against the spec as it arrives.
struct Run {
    spec: Spec,
    seen: BTreeSet<(String, u16, String)>,
}

impl Run {
    /// Asserts that `response` is the one this case is meant to provoke
    /// and that it conforms to the spec, and records it.
    fn expect(
        &mut self,
        target: Target<'_>,
        response: &Response<Body>,
        status: u16,
        code: &str,
    ) -> Value {
        let observed = Observed::of(response);
        let body = String::from_utf8_lossy(&observed.body).into_owned();
        assert_eq!(
            (observed.status, observed.error_code().unwrap_or_default()),
            (status, code.to_owned()),
            "{target}: not the response this case provokes: {body}"
        );
        let problems = self.spec.check_response(target, &observed);
        assert!(
            problems.is_empty(),
            "{target} {status} {code} breaks openapi.yaml:\n  {}\nbody: {body}",
            problems.join("\n  ")
        );
        let json: Value = serde_json::from_slice(&observed.body).unwrap_or(Value::Null);
        if code == "invalid_field" {
            let field = json["field"].as_str().unwrap_or_default();
            assert!(
                self.inputs(target).contains(field),
                "{target}: invalid_field names {field:?}, not one of its documented inputs"
            );
        }
        self.seen
            .insert((target.to_string(), status, code.to_owned()));
        json
    }

    /// The body and parameter names an operation documents.
    fn inputs(&self, target: Target<'_>) -> BTreeSet<String> {
        let Target::Operation { method, path } = target else {
            return BTreeSet::new();
        };
        let operation = self.spec.operation(method, path).unwrap();
        let mut names = BTreeSet::new();
        for parameter in operation["parameters"].as_array().into_iter().flatten() {
            let parameter = self.spec.resolve(parameter);
            names.insert(parameter["name"].as_str().unwrap().to_owned());
        }
        if let Some(schema) = self.request_schema(target) {
            let schema = self.spec.resolve(schema);
            for name in schema["properties"].as_object().into_iter().flatten() {
                names.insert(name.0.clone());
            }
        }
        names
    }

    fn request_schema(&self, target: Target<'_>) -> Option<&Value> {
        let Target::Operation { method, path } = target else {
            return None;
        };
        let body = self.spec.operation(method, path)?.get("requestBody")?;
        self.spec
            .resolve(body)
            .pointer("/content/application~1json/schema")
    }

    /// A body the handler accepted conforms to the documented request.
    fn accepted_body(&self, target: Target<'_>, body: &str) {
        let schema = self
            .request_schema(target)
            .unwrap_or_else(|| panic!("{target} documents no request body"));
        let errors = self
            .spec
            .validate(schema, &serde_json::from_str(body).unwrap());
        assert!(errors.is_empty(), "{target} request {body}: {errors:?}");
    }

    /// A parameter value (`place` is `query` or `header`) the handler
    /// accepted conforms to its documented schema; one it refused, with
    /// `valid` false, does not.
    fn parameter(&self, target: Target<'_>, place: &str, name: &str, value: &str, valid: bool) {
        let Target::Operation { method, path } = target else {
            unreachable!()
        };
        let operation = self.spec.operation(method, path).unwrap();
        let parameter = operation["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| self.spec.resolve(p))
            .find(|p| p["name"] == name && p["in"] == place)
            .unwrap_or_else(|| panic!("{target} documents no {place} parameter {name}"));
        let schema = self.spec.resolve(&parameter["schema"]);
        // Parameters are text; an integer parameter is read as a number.
        let instance = match (schema["type"].as_str(), value.parse::<i64>()) {
            (Some("integer"), Ok(n)) => json!(n),
            _ => json!(value),
        };
        let errors = self.spec.validate(schema, &instance);
        assert_eq!(
            errors.is_empty(),
            valid,
            "{target} {name}={value}: {errors:?}"
        );
    }
}

/// `events/<name>.json` with this body (if any) and this Authorization (or
/// none).
fn request(name: &str, body: Option<&str>, auth: Option<&str>) -> Request {
    let mut request = event(name);
    if let Some(body) = body {
        request = with_body(request, body);
    }
    match auth {
        Some(token) => with_auth(request, token),
        None => {
            request.headers_mut().remove("authorization");
            request
        }
    }
}

fn with_header(mut request: Request, name: &'static str, value: &str) -> Request {
    request
        .headers_mut()
        .insert(name, value.parse().expect("a header value"));
    request
}

/// Any request, now for `method` and `path`.
fn aimed(method: &str, path: &str) -> Request {
    let mut request = with_method(event("balance"), method.parse::<Method>().unwrap());
    *request.uri_mut() = format!("https://127.0.0.1{path}").parse().unwrap();
    request
}

/// A body over the size limit: `field` holds as many bytes as the limit.
fn oversized(field: &str) -> String {
    let filler = "a".repeat(chat_core::http::MAX_BODY_BYTES);
    json!({ field: filler }).to_string()
}

/// A well-formed token of a session that exists nowhere: enough to reach
/// the store (its signing key first) in an app whose store fails.
fn well_formed_token() -> String {
    let alice = Username::parse("alice").unwrap();
    let year_2100 = 4_102_444_800;
    AuthToken::issue(&alice, year_2100, &api_tests::events_signing_key())
        .unwrap()
        .expose()
        .to_owned()
}

async fn call(app: &App, target: Target<'_>, request: Request) -> Response<Body> {
    let Target::Operation { path, .. } = target else {
        return fallback::handle(request).await.unwrap();
    };
    let result = match path {
        "/register/" => register::handle(app, request).await,
        "/login/" => login::handle(app, request).await,
        "/chat/" => chat::handle(app, request).await,
        "/chats/" => chats::handle(app, request).await,
        "/balance/" => balance::handle(app, request).await,
        "/logout/" => logout::handle(app, request).await,
        other => panic!("no handler for {other}"),
    };
    result.unwrap()
}

/// A valid request for each operation, with `token` where one is needed.
fn valid_request(target: Target<'_>, token: &str, username: &str) -> Request {
    match target {
        REGISTER => request("register", Some(&credentials(username, PASSWORD)), None),
        LOGIN => request("login", Some(&credentials(username, PASSWORD)), None),
        CHAT => request("chat", None, Some(token)),
        CHATS => chats_request("", Some(token)),
        BALANCE => request("balance", None, Some(token)),
        LOGOUT => request("logout", None, Some(token)),
        other => panic!("no valid request for {other}"),
    }
}

/// An app whose tables were never created: every storage call is refused
/// as DynamoDB refuses a call on a missing table, which is our bug: 500.
fn app_without_tables() -> App {
    let prefix = format!("missing{}-", uuid::Uuid::new_v4().simple());
    quiet_app(Config::with_tables(Tables::with_prefix(&prefix)), client())
}

/// An app whose DynamoDB refuses connections, as in an outage: 503. One
/// attempt, since retrying a refused connection only slows the test.
fn app_without_dynamodb() -> App {
    let down = client_with_production_timeouts(&format!("http://127.0.0.1:{}", free_port()));
    let down = aws_sdk_dynamodb::Client::from_conf(
        down.config()
            .to_builder()
            .retry_config(RetryConfig::disabled())
            .build(),
    );
    quiet_app(Config::with_tables(Tables::with_prefix("outage-")), down)
}

/// The production model responder against `stub`, one attempt per call.
fn model_answering(stub: &ConverseStub) -> Arc<chat::model::BedrockResponder> {
    let mut model = ModelConfig::new("anthropic.claude-3-haiku-20240307-v1:0");
    model.max_attempts = 1;
    Arc::new(stub.responder(model))
}

#[tokio::test]
async fn every_documented_response_comes_from_a_real_request_and_matches_the_spec() {
    let mut run = Run {
        spec: spec(),
        seen: BTreeSet::new(),
    };
    let mut app = fresh_app().await;

    // POST /register/
    let body = credentials("alice", PASSWORD);
    run.accepted_body(REGISTER, &body);
    let response = call(&app, REGISTER, request("register", Some(&body), None)).await;
    run.expect(REGISTER, &response, 201, "");
    let response = call(&app, REGISTER, request("register", Some(&body), None)).await;
    run.expect(REGISTER, &response, 409, "username_taken");
    let response = call(&app, REGISTER, request("register", Some("{"), None)).await;
    run.expect(REGISTER, &response, 400, "invalid_json");
    for (body, field) in [
        (credentials("no body", PASSWORD), "username"),
        (credentials("bob", "short"), "password"),
        (json!({"username": "bob"}).to_string(), "password"),
    ] {
        let response = call(&app, REGISTER, request("register", Some(&body), None)).await;
        assert_eq!(
            run.expect(REGISTER, &response, 400, "invalid_field")["field"],
            field
        );
    }
    let response = call(
        &app,
        REGISTER,
        request("register", Some(&oversized("username")), None),
    )
    .await;
    run.expect(REGISTER, &response, 413, "payload_too_large");

    // POST /login/
    run.accepted_body(LOGIN, &body);
    let response = call(&app, LOGIN, request("login", Some(&body), None)).await;
    let token = run.expect(LOGIN, &response, 200, "")["token"]
        .as_str()
        .unwrap()
        .to_owned();
    for body in [
        credentials("alice", "not-the-password"),
        credentials("nobody", PASSWORD),
    ] {
        let response = call(&app, LOGIN, request("login", Some(&body), None)).await;
        run.expect(LOGIN, &response, 401, "invalid_credentials");
    }
    let response = call(&app, LOGIN, request("login", Some("[]"), None)).await;
    run.expect(LOGIN, &response, 400, "invalid_json");
    let response = call(
        &app,
        LOGIN,
        request("login", Some(r#"{"username": "alice"}"#), None),
    )
    .await;
    run.expect(LOGIN, &response, 400, "invalid_field");
    let response = call(
        &app,
        LOGIN,
        request("login", Some(&oversized("password")), None),
    )
    .await;
    run.expect(LOGIN, &response, 413, "payload_too_large");

    // POST /chat/
    let body = json!({"message": "Hello, how are you?"}).to_string();
    run.accepted_body(CHAT, &body);
    let response = call(&app, CHAT, request("chat", Some(&body), Some(&token))).await;
    run.expect(CHAT, &response, 200, "");
    assert!(response.headers().get("idempotent-replayed").is_none());
    let keyed = || {
        with_header(
            request("chat", Some(&body), Some(&token)),
            "idempotency-key",
            "k-1",
        )
    };
    run.parameter(CHAT, "header", "Idempotency-Key", "k-1", true);
    let first = call(&app, CHAT, keyed()).await;
    let first = run.expect(CHAT, &first, 200, "");
    let replay = call(&app, CHAT, keyed()).await;
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(run.expect(CHAT, &replay, 200, ""), first);
    let reused = with_header(
        request("chat", Some(r#"{"message": "another"}"#), Some(&token)),
        "idempotency-key",
        "k-1",
    );
    let response = call(&app, CHAT, reused).await;
    run.expect(CHAT, &response, 422, "idempotency_key_reused");
    let response = call(&app, CHAT, request("chat", Some("{"), Some(&token))).await;
    run.expect(CHAT, &response, 400, "invalid_json");
    let response = call(
        &app,
        CHAT,
        request("chat", Some(r#"{"message": " "}"#), Some(&token)),
    )
    .await;
    run.expect(CHAT, &response, 400, "invalid_field");
    let long_key = with_header(
        request("chat", Some(&body), Some(&token)),
        "idempotency-key",
        &"k".repeat(65),
    );
    run.parameter(CHAT, "header", "Idempotency-Key", &"k".repeat(65), false);
    let response = call(&app, CHAT, long_key).await;
    assert_eq!(
        run.expect(CHAT, &response, 400, "invalid_field")["field"],
        "Idempotency-Key"
    );
    let response = call(
        &app,
        CHAT,
        request("chat", Some(&oversized("message")), Some(&token)),
    )
    .await;
    run.expect(CHAT, &response, 413, "payload_too_large");
    // A user granted nothing cannot pay for a chat.
    app.config.initial_tokens = 0;
    let pauper = signed_up(&app, "pauper").await;
    app.config.initial_tokens = DEFAULT_INITIAL_TOKENS;
    let response = call(&app, CHAT, request("chat", Some(&body), Some(&pauper))).await;
    assert_eq!(
        run.expect(CHAT, &response, 402, "insufficient_tokens")["tokens"],
        0
    );
    // The model answers with an error (502), then is throttled (503).
    let refusing = ConverseStub::start(Answer::error(400, "ValidationException"));
    app.responder = model_answering(&refusing);
    let response = call(&app, CHAT, request("chat", Some(&body), Some(&token))).await;
    run.expect(CHAT, &response, 502, "model_error");
    let throttled = ConverseStub::start(Answer::error(429, "ThrottlingException"));
    app.responder = model_answering(&throttled);
    let response = call(&app, CHAT, request("chat", Some(&body), Some(&token))).await;
    run.expect(CHAT, &response, 503, "model_unavailable");
    // A key whose first chat is still with the model (409).
    let slow = ConverseStub::start(Answer::after(
        std::time::Duration::from_secs(3),
        Answer::text("in a moment"),
    ));
    app.responder = model_answering(&slow);
    let keyed = || {
        let mut request = request("chat", Some(&body), Some(&token));
        request
            .headers_mut()
            .insert("idempotency-key", "slow-key".parse().unwrap());
        request
    };
    let (first, second) = tokio::join!(call(&app, CHAT, keyed()), async {
        // Once the first is with the model, it holds the key.
        while slow.call_count() == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        call(&app, CHAT, keyed()).await
    });
    assert_eq!(first.status(), 200);
    run.expect(CHAT, &second, 409, "idempotency_key_in_progress");
    app.responder = Arc::new(DummyResponder);

    // GET /chats/
    run.parameter(CHATS, "query", "limit", "1", true);
    let response = call(&app, CHATS, chats_request("limit=1", Some(&token))).await;
    let page = run.expect(CHATS, &response, 200, "");
    let cursor = page["next_cursor"]
        .as_str()
        .expect("more than one chat, so a cursor")
        .to_owned();
    run.parameter(CHATS, "query", "cursor", &cursor, true);
    let response = call(
        &app,
        CHATS,
        chats_request(&format!("cursor={cursor}"), Some(&token)),
    )
    .await;
    assert_eq!(
        run.expect(CHATS, &response, 200, "")["next_cursor"],
        Value::Null
    );
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("cursor=nope", "cursor"),
    ] {
        let (name, value) = query.split_once('=').unwrap();
        run.parameter(CHATS, "query", name, value, false);
        let response = call(&app, CHATS, chats_request(query, Some(&token))).await;
        assert_eq!(
            run.expect(CHATS, &response, 400, "invalid_field")["field"],
            field
        );
    }

    // GET /balance/
    let response = call(&app, BALANCE, request("balance", None, Some(&token))).await;
    run.expect(BALANCE, &response, 200, "");

    // Every operation that takes a token refuses a missing or forged one.
    for target in [CHAT, CHATS, BALANCE, LOGOUT] {
        for auth in [
            None,
            Some("Token garbage"),
            Some(well_formed_token().as_str()),
        ] {
            let mut request = valid_request(target, "x", "alice");
            match auth {
                None => {
                    request.headers_mut().remove("authorization");
                }
                Some(auth) => request = with_auth(request, auth),
            }
            let response = call(&app, target, request).await;
            run.expect(target, &response, 401, "unauthorized");
        }
    }

    // A disabled account: login, chat, history and balance refuse it.
    let alice = chat_core::domain::Username::parse("alice").unwrap();
    assert!(app.store.set_disabled(&alice, true).await.unwrap());
    let login = credentials("alice", PASSWORD);
    let response = call(&app, LOGIN, request("login", Some(&login), None)).await;
    run.expect(LOGIN, &response, 403, "account_disabled");
    let response = call(&app, CHAT, request("chat", Some(&body), Some(&token))).await;
    run.expect(CHAT, &response, 403, "account_disabled");
    let response = call(&app, CHATS, chats_request("", Some(&token))).await;
    run.expect(CHATS, &response, 403, "account_disabled");
    let response = call(&app, BALANCE, request("balance", None, Some(&token))).await;
    run.expect(BALANCE, &response, 403, "account_disabled");
    assert!(app.store.set_disabled(&alice, false).await.unwrap());

    // POST /logout/, last: it ends the session the cases above use.
    let response = call(&app, LOGOUT, request("logout", None, Some(&token))).await;
    run.expect(LOGOUT, &response, 204, "");

    // Requests no operation matches, through the fallback and through each
    // handler invoked with the wrong method.
    let response = call(&app, Target::Fallback, aimed("GET", "/nope/")).await;
    run.expect(Target::Fallback, &response, 404, "not_found");
    for (method, path, _) in ROUTES {
        let wrong = if method == "GET" { "POST" } else { "GET" };
        for target in [Target::Fallback, operation(method, path)] {
            let response = call(&app, target, aimed(wrong, path)).await;
            run.expect(Target::Fallback, &response, 405, "method_not_allowed");
            assert_eq!(response.headers()["allow"], method, "{wrong} {path}");
        }
    }

    // The store failing: our bug (500), or out of reach (503).
    for (broken, status, code) in [
        (app_without_tables(), 500, "internal_error"),
        (app_without_dynamodb(), 503, "unavailable"),
    ] {
        for (method, path, _) in ROUTES {
            let target = operation(method, path);
            let request = valid_request(target, &well_formed_token(), "carol");
            let response = call(&broken, target, request).await;
            run.expect(target, &response, status, code);
        }
    }

    // What the spec documents was produced above, or is listed as
    // documented only; and the list holds nothing it need not.
    let documented = documented(&run.spec);
    let mut only = BTreeSet::new();
    for (target, status, code, why) in DOCUMENTED_ONLY {
        let key = (target.to_string(), *status, code.to_string());
        assert!(
            documented.contains(&key),
            "DOCUMENTED_ONLY {key:?} ({why}) is not in openapi.yaml"
        );
        assert!(
            !run.seen.contains(&key),
            "DOCUMENTED_ONLY {key:?} was produced: drop it from the list"
        );
        only.insert(key);
    }
    let missing: Vec<_> = documented
        .difference(&run.seen)
        .filter(|k| !only.contains(*k))
        .collect();
    assert!(
        missing.is_empty(),
        "documented, never produced: {missing:?}"
    );
    let extra: Vec<_> = run.seen.difference(&documented).collect();
    assert!(extra.is_empty(), "produced, not documented: {extra:?}");
}

#[test]
fn every_route_is_an_operation_and_every_operation_a_route() {
    let spec = spec();
    let routes: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(method, path, _)| (method.to_string(), path.to_string()))
        .collect();
    let operations: BTreeSet<(String, String)> = spec.operations().into_iter().collect();
    assert_eq!(operations, routes);
    // The operation is named after the function that serves it.
    for (method, path, function) in ROUTES {
        let operation = spec.operation(method, path).unwrap();
        assert_eq!(operation["operationId"], function, "{method} {path}");
    }
}

#[test]
fn an_operation_takes_a_token_exactly_when_it_can_refuse_one() {
    let spec = spec();
    for (method, path) in spec.operations() {
        let target = operation(&method, &path);
        let op = spec.operation(&method, &path).unwrap();
        let secured = op["security"]
            .as_array()
            .is_some_and(|requirements| requirements.iter().any(|r| r.get("TokenAuth").is_some()));
        let refuses = spec
            .response(target, 401)
            .is_some_and(|r| spec.error_codes(r).contains("unauthorized"));
        assert_eq!(secured, refuses, "{target}: security vs 401 unauthorized");
    }
}

/// One value of every `ApiError` variant. `variant` has no catch-all arm,
/// so a new variant does not compile until it is listed there, and the
/// count below fails until it has a value here: a new error cannot skip
/// the spec.
fn every_api_error() -> Vec<ApiError> {
    fn variant(error: &ApiError) -> usize {
        match error {
            ApiError::InvalidJson(_) => 0,
            ApiError::InvalidField { .. } => 1,
            ApiError::PayloadTooLarge { .. } => 2,
            ApiError::Unauthorized => 3,
            ApiError::UsernameTaken => 4,
            ApiError::InvalidCredentials => 5,
            ApiError::InsufficientTokens { .. } => 6,
            ApiError::IdempotencyKeyReused => 7,
            ApiError::NotFound => 8,
            ApiError::MethodNotAllowed { .. } => 9,
            ApiError::Unavailable(_) => 10,
            ApiError::ModelError(_) => 11,
            ApiError::ModelUnavailable(_) => 12,
            ApiError::Internal(_) => 13,
            ApiError::IdempotencyKeyInProgress => 14,
            ApiError::AccountDisabled => 15,
        }
    }
    const VARIANTS: usize = 16;
    let all = vec![
        ApiError::InvalidJson("expected a JSON object".into()),
        ApiError::invalid_field("message", "may not be blank"),
        ApiError::PayloadTooLarge {
            limit: chat_core::http::MAX_BODY_BYTES,
        },
        ApiError::Unauthorized,
        ApiError::UsernameTaken,
        ApiError::InvalidCredentials,
        ApiError::InsufficientTokens {
            balance: 40,
            cost: 100,
        },
        ApiError::IdempotencyKeyReused,
        ApiError::NotFound,
        ApiError::MethodNotAllowed { allowed: "POST" },
        ApiError::Unavailable("throttled".into()),
        ApiError::ModelError("refused".into()),
        ApiError::ModelUnavailable("throttled".into()),
        ApiError::Internal("bug".into()),
        ApiError::IdempotencyKeyInProgress,
        ApiError::AccountDisabled,
    ];
    let listed: BTreeSet<usize> = all.iter().map(variant).collect();
    assert_eq!(listed, (0..VARIANTS).collect(), "one value of each variant");
    all
}

#[test]
fn every_error_code_is_an_api_error_and_every_api_error_is_documented_as_it_responds() {
    let spec = spec();
    // (target, status) of every response that lists each code.
    let mut listed_at: BTreeMap<String, Vec<(String, u16)>> = BTreeMap::new();
    for (target, status, code) in documented(&spec) {
        if !code.is_empty() {
            listed_at.entry(code).or_default().push((target, status));
        }
    }
    let mut produced = BTreeSet::new();
    for error in every_api_error() {
        let code = error.code();
        produced.insert(code.to_owned());
        let observed = Observed::of(&error.into_response());
        let places = listed_at
            .get(code)
            .unwrap_or_else(|| panic!("ApiError code {code} is not in openapi.yaml"));
        for (target, status) in places {
            assert_eq!(*status, observed.status, "{code} at {target}");
            let target = match target.split_once(' ') {
                Some((method, path)) => operation(method, path),
                None => Target::Fallback,
            };
            let problems = spec.check_response(target, &observed);
            assert!(problems.is_empty(), "{code}: {problems:?}");
        }
    }
    let documented: BTreeSet<String> = listed_at.into_keys().collect();
    assert_eq!(
        documented, produced,
        "error codes: openapi.yaml vs ApiError"
    );
}

#[test]
fn the_spec_is_openapi_3_1_with_what_clients_need() {
    let spec = spec();
    let doc = spec.doc();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    assert!(doc["servers"].as_array().is_some_and(|s| !s.is_empty()));
    assert!(doc["components"]["schemas"].is_object());
    let scheme = &doc["components"]["securitySchemes"]["TokenAuth"];
    assert_eq!(
        (&scheme["type"], &scheme["in"], &scheme["name"]),
        (&json!("apiKey"), &json!("header"), &json!("Authorization"))
    );
    for (at, reference) in spec.references() {
        assert!(
            spec.pointer(&reference).is_some(),
            "{at}: {reference} names nothing"
        );
    }
    assert_eq!(
        spec.unsupported(),
        Vec::<String>::new(),
        "the validator must check every rule"
    );
    // Every status is a number a client can branch on, and every response
    // of the fallback is an error.
    for (status, _) in spec.responses(Target::Fallback) {
        assert!(status.starts_with('4'), "x-fallback {status}");
    }
}

#[test]
fn every_example_in_the_spec_conforms_to_its_schema() {
    fn walk(spec: &Spec, value: &Value, at: &str, checked: &mut usize) {
        let Value::Object(map) = value else {
            if let Value::Array(items) = value {
                for (i, item) in items.iter().enumerate() {
                    walk(spec, item, &format!("{at}/{i}"), checked);
                }
            }
            return;
        };
        // A media type or parameter: `example` beside `schema`.
        if let (Some(schema), Some(example)) = (map.get("schema"), map.get("example")) {
            let errors = spec.validate(schema, example);
            assert!(errors.is_empty(), "{at}/example: {errors:?}");
            *checked += 1;
        }
        // A schema with `examples`.
        if let (Some(Value::Array(examples)), true) =
            (map.get("examples"), map.contains_key("type"))
        {
            for example in examples {
                let errors = spec.validate(value, example);
                assert!(errors.is_empty(), "{at}/examples: {errors:?}");
                *checked += 1;
            }
        }
        for (key, child) in map {
            walk(spec, child, &format!("{at}/{key}"), checked);
        }
    }
    let spec = spec();
    let mut checked = 0;
    walk(&spec, spec.doc(), "#", &mut checked);
    assert!(checked >= 10, "only {checked} examples found");
}

/// Each request field's limits in the spec are exactly the server's, both
/// ways: every value its schema allows the server's own parser takes, and
/// every value the schema refuses the parser refuses. Schemathesis (in
/// `make test`) sends both kinds and fails on any disagreement; this holds
/// the rules themselves, over whole alphabets and at every bound.
#[test]
fn every_request_limit_in_the_spec_is_the_servers() {
    let spec = spec();
    let schema = |reference: &str| {
        spec.resolve(
            spec.pointer(reference)
                .unwrap_or_else(|| panic!("{reference}")),
        )
        .clone()
    };
    let agree = |what: &str, schema: &Value, value: &str, server: bool| {
        let allowed = spec.validate(schema, &json!(value)).is_empty();
        assert_eq!(
            allowed, server,
            "{what} {value:?}: the spec allows it: {allowed}, the server: {server}"
        );
    };
    // A pattern decides alone for single characters, over all of Unicode;
    // compiled once here, as validating each would recompile it.
    let pattern = |schema: &Value| {
        let source = schema["pattern"].as_str().expect("a pattern");
        regex_lite::Regex::new(source).expect("the pattern compiles")
    };
    let every_char = || (0..=0x10FFFF_u32).filter_map(char::from_u32);

    let username = schema("#/components/schemas/Username");
    let name_pattern = pattern(&username);
    for c in every_char() {
        let one = c.to_string();
        assert_eq!(
            name_pattern.is_match(&one),
            Username::parse(&one).is_ok(),
            "username {c:?} (U+{:04X})",
            c as u32
        );
    }
    for value in [
        String::new(),
        "a".repeat(150),
        "a".repeat(151),
        "josé".into(),
        "a b".into(),
        "alice".into(),
    ] {
        agree(
            "username",
            &username,
            &value,
            Username::parse(&value).is_ok(),
        );
    }

    let password = schema("#/components/schemas/Credentials/properties/password");
    for c in ["a", "é", "用", "𝄞", " "] {
        for n in [0, 1, 7, 8, 9, 255, 256, 257, 1024] {
            let value = c.repeat(n);
            agree(
                "password",
                &password,
                &value,
                Password::parse(value.clone()).is_ok(),
            );
        }
    }

    let message = schema("#/components/schemas/ChatRequest/properties/message");
    let message_pattern = pattern(&message);
    for c in every_char() {
        let one = c.to_string();
        assert_eq!(
            message_pattern.is_match(&one),
            ChatMessage::parse(one.clone()).is_ok(),
            "message {c:?} (U+{:04X})",
            c as u32
        );
    }
    for value in [
        String::new(),
        " \n\t".into(),
        "  x  ".into(),
        "a".repeat(8000),
        "𝄞".repeat(8000),
        "a".repeat(8001),
        format!("{} ", "a".repeat(8000)),
    ] {
        agree(
            "message",
            &message,
            &value,
            ChatMessage::parse(value.clone()).is_ok(),
        );
    }

    let key = schema("#/components/parameters/IdempotencyKey/schema");
    let key_chars: Vec<char> = (0..0x100_u32).filter_map(char::from_u32).collect();
    for c in &key_chars {
        for value in [
            c.to_string(),
            format!("a{c}b"),
            format!("{c}ab"),
            format!("ab{c}"),
        ] {
            agree(
                "Idempotency-Key",
                &key,
                &value,
                IdempotencyKey::parse(&value).is_ok(),
            );
        }
    }
    for n in [0, 1, 64, 65] {
        let value = "k".repeat(n);
        agree(
            "Idempotency-Key",
            &key,
            &value,
            IdempotencyKey::parse(&value).is_ok(),
        );
    }

    let cursor = schema("#/components/schemas/Cursor");
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/=.";
    for last in alphabet.chars() {
        for prefix in [
            "AZq8EjRWfe-BI0VniavN7",
            "_____________________",
            "AZq8EjRWfe-BI0VniavN",
        ] {
            let value = format!("{prefix}{last}");
            agree("cursor", &cursor, &value, Cursor::parse(&value).is_ok());
        }
    }
    for value in [
        "",
        "AZq8EjRWfe-BI0VniavN7wA",
        "AZq8EjRWfe-BI0VniavN7w==",
        "AZq8EjRWfe+BI0VniavN7w",
    ] {
        agree("cursor", &cursor, value, Cursor::parse(value).is_ok());
    }
}
