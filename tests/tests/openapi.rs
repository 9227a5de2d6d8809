//! `openapi.yaml` held to the code in both directions, so neither can drift:
//!
//! - every response the spec documents (each operation's statuses and
//!   error codes, and the fallbacks' 404 and 405) is produced here by a real
//!   request to the real handler, DynamoDB Local and a stand-in model behind
//!   it, and each response is validated against the spec: a documented
//!   status, the body against its schema (a stream event by event, each
//!   chunk against `ChatCompletionChunk`), every documented header present
//!   and valid, no undocumented header;
//! - every operation is a route in `chat_core::routes::ROUTES` or
//!   `OPENAI_ROUTES` and every route an operation; every error code in the
//!   spec is one `ApiError` produces (in OpenAI's shape under `/v1/`) and
//!   every `ApiError` is in the spec, with its status and headers;
//! - the completion request's schema takes exactly what the server's
//!   parser takes, but for the rules no schema can state, each listed.

use chat_core::credits::Credits;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use api_tests::completion::{completion_request, streamed_text};
use api_tests::converse_stub::{Answer, ConverseStub, Gate, Streamed};
use api_tests::openapi::{error_code_of, event_data, Observed, Spec, Target};
use api_tests::*;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use chat_core::clock::Timestamp;
use chat_core::config::{Registration, SourceLimits, DEFAULT_INITIAL_TOKENS};
use chat_core::domain::Cursor;
use chat_core::domain::{AuthToken, ChatMessage, IdempotencyKey, Password, Username};
use chat_core::openai::OpenAiError;
use chat_core::responder::DummyResponder;
use chat_core::routes::{OPENAI_ROUTES, ROUTES};
use chat_core::store::MAX_API_KEYS;
use chat_core::{ApiError, App, Config, Tables};
use chat_model::ModelConfig;
use devtools::dynamodb_local::{
    client, client_with_production_timeouts, free_port, quiet_app, repo_root,
};
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
const BALANCE_PATCH: Target<'static> = operation("PATCH", "/balance/");
const LOGOUT: Target<'static> = operation("POST", "/logout/");
const KEYS_CREATE: Target<'static> = operation("POST", "/keys/");
const KEYS_LIST: Target<'static> = operation("GET", "/keys/");
const KEYS_DELETE: Target<'static> = operation("DELETE", "/keys/{id}");
const KEYS_PATCH: Target<'static> = operation("PATCH", "/keys/{id}");
const USAGE: Target<'static> = operation("GET", "/usage/");
const COMPLETIONS: Target<'static> = operation("POST", "/v1/chat/completions");
const RESPONSES: Target<'static> = operation("POST", "/v1/responses");
const MODELS: Target<'static> = operation("GET", "/v1/models");
const EMBEDDINGS: Target<'static> = operation("POST", "/v1/embeddings");

/// Every route: the API's and the OpenAI-compatible ones.
fn all_routes() -> impl Iterator<Item = &'static (&'static str, &'static str, &'static str)> {
    ROUTES.iter().chain(OPENAI_ROUTES.iter())
}

/// The model of the stand-in Bedrock (any id does; this is the default's).
const MODEL_ID: &str = "anthropic.claude-3-haiku-20240307-v1:0";

/// Every (target, status, error code) the spec documents; "" as the code
/// of a response that is not an error.
fn documented(spec: &Spec) -> BTreeSet<(String, u16, String)> {
    let operations = spec.operations();
    let mut targets: Vec<Target<'_>> = operations
        .iter()
        .map(|(method, path)| operation(method, path))
        .collect();
    targets.push(Target::Fallback);
    targets.push(Target::OpenAiFallback);
    targets.push(Target::OpenAiPreflight);
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
        let observed = self.observe(target, response, status, code);
        if code == "invalid_field" {
            let field = observed.error_field().unwrap_or_default();
            assert!(
                self.inputs(target).contains(&field),
                "{target}: invalid_field names {field:?}, not one of its documented inputs"
            );
        }
        serde_json::from_slice(&observed.body).unwrap_or(Value::Null)
    }

    /// A 400 `invalid_field` for `name`, a field the operation does not
    /// document and whose body schema refuses undocumented fields: the
    /// one `invalid_field` that names no documented input.
    fn expect_unknown_field(&mut self, target: Target<'_>, response: &Response<Body>, name: &str) {
        let observed = self.observe(target, response, 400, "invalid_field");
        assert_eq!(observed.error_field().as_deref(), Some(name), "{target}");
        assert!(
            !self.inputs(target).contains(name),
            "{target}: {name} is documented"
        );
        let schema = self.spec.resolve(self.request_schema(target).unwrap());
        assert_eq!(
            schema["additionalProperties"], false,
            "{target} refuses {name} but documents no additionalProperties: false"
        );
    }

    /// Asserts the status and code, checks the response against the spec,
    /// and records it.
    fn observe(
        &mut self,
        target: Target<'_>,
        response: &Response<Body>,
        status: u16,
        code: &str,
    ) -> Observed {
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
        self.seen
            .insert((target.to_string(), status, code.to_owned()));
        observed
    }

    /// A completion streamed with status 200, checked against the spec as
    /// every response is (each event against the event schema), and then
    /// against the stream's order, which no schema states: the role
    /// first, then the text, then the finish, then (with `include_usage`)
    /// the usage, then `[DONE]`; or, when the stream failed, an error
    /// event last and no `[DONE]`. Every chunk is also held to
    /// `ChatCompletionChunk` itself. Returns the chunks and the error
    /// event, if any.
    /// [`Run::expect`] for an answer whose body is not JSON (an event
    /// stream): the spec's checks, then the body's bytes.
    fn expect_raw(
        &mut self,
        target: Target<'_>,
        response: &Response<Body>,
        status: u16,
    ) -> Vec<u8> {
        self.observe(target, response, status, "").body
    }

    fn expect_stream(
        &mut self,
        response: &Response<Body>,
        include_usage: bool,
    ) -> (Vec<Value>, Option<Value>) {
        let observed = self.observe(COMPLETIONS, response, 200, "");
        assert!(
            observed.header("tokens-charged").is_none(),
            "a stream cannot say what it charged in a header"
        );
        assert_eq!(observed.header("cache-control"), Some("no-cache"));
        let events = event_data(&observed.body).unwrap();
        let (last, rest) = events.split_last().expect("at least one event");
        let ending = match last.as_str() {
            "[DONE]" => None,
            error => {
                let error: Value = serde_json::from_str(error).unwrap();
                let schema = json!({"$ref": "#/components/schemas/CompletionStreamError"});
                let errors = self.spec.validate(&schema, &error);
                assert!(errors.is_empty(), "the last event {error}: {errors:?}");
                Some(error)
            }
        };
        let chunk_schema = json!({"$ref": "#/components/schemas/ChatCompletionChunk"});
        let chunks: Vec<Value> = rest
            .iter()
            .map(|data| {
                let chunk: Value = serde_json::from_str(data)
                    .unwrap_or_else(|e| panic!("a chunk that is not JSON ({e}): {data}"));
                let errors = self.spec.validate(&chunk_schema, &chunk);
                assert!(errors.is_empty(), "chunk {chunk}: {errors:?}");
                chunk
            })
            .collect();
        let first = chunks.first().expect("a stream begins with a chunk");
        assert_eq!(first["choices"][0]["delta"]["role"], "assistant", "{first}");
        for chunk in &chunks {
            for field in ["id", "created", "model"] {
                assert_eq!(
                    chunk[field], first[field],
                    "one {field} for the whole stream"
                );
            }
            assert_eq!(
                chunk.get("usage").is_some(),
                include_usage,
                "usage (null until the last) exactly with include_usage: {chunk}"
            );
        }
        if ending.is_none() {
            let replying = if include_usage {
                let (usage, before) = chunks.split_last().unwrap();
                assert_eq!(usage["choices"], json!([]), "the usage chunk last");
                assert!(usage["usage"].is_object(), "{usage}");
                before
            } else {
                &chunks[..]
            };
            let finish = replying.last().unwrap();
            assert_eq!(finish["choices"][0]["delta"], json!({}), "{finish}");
            assert!(
                finish["choices"][0]["finish_reason"].is_string(),
                "{finish}"
            );
            let finishes = replying
                .iter()
                .filter(|c| !c["choices"][0]["finish_reason"].is_null())
                .count();
            assert_eq!(finishes, 1, "one finish, in the chunk before the end");
        } else {
            assert!(
                chunks
                    .iter()
                    .all(|c| c["choices"][0]["finish_reason"].is_null()),
                "a failed stream has no finish"
            );
        }
        (chunks, ending)
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
        let errors = self.body_errors(target, body);
        assert!(errors.is_empty(), "{target} request {body}: {errors:?}");
    }

    /// A body the handler refused as malformed breaks the documented
    /// request.
    fn refused_body(&self, target: Target<'_>, body: &str) {
        let errors = self.body_errors(target, body);
        assert!(!errors.is_empty(), "{target} documents {body} as valid");
    }

    fn body_errors(&self, target: Target<'_>, body: &str) -> Vec<String> {
        let schema = self
            .request_schema(target)
            .unwrap_or_else(|| panic!("{target} documents no request body"));
        self.spec
            .validate(schema, &serde_json::from_str(body).unwrap())
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

/// Any request, now for `method` and `path` (a route's `{id}` taken as a
/// key id that names no key).
fn aimed(method: &str, path: &str) -> Request {
    let mut request = with_method(event("balance"), method.parse::<Method>().unwrap());
    let path = path.replace("{id}", UNKNOWN_KEY_ID);
    *request.uri_mut() = format!("https://127.0.0.1{path}").parse().unwrap();
    request
}

/// `PATCH /balance/` with this body.
fn patch_balance(body: &str, token: &str) -> Request {
    with_auth(with_body(event("balance-alert"), body), token)
}

/// The balance alert's threshold: set, read back, cleared, and each of
/// `PATCH /balance/`'s refusals.
async fn alert_threshold(run: &mut Run, app: &App, token: &str) {
    let set = json!({"alert_below": 500}).to_string();
    run.accepted_body(BALANCE_PATCH, &set);
    let response = call(app, BALANCE_PATCH, patch_balance(&set, token)).await;
    assert_eq!(
        run.expect(BALANCE_PATCH, &response, 200, "")["alert_below"],
        500
    );
    let response = call(app, BALANCE, request("balance", None, Some(token))).await;
    assert_eq!(run.expect(BALANCE, &response, 200, "")["alert_below"], 500);
    let clear = json!({"alert_below": null}).to_string();
    run.accepted_body(BALANCE_PATCH, &clear);
    let response = call(app, BALANCE_PATCH, patch_balance(&clear, token)).await;
    let cleared = run.expect(BALANCE_PATCH, &response, 200, "");
    assert!(cleared.get("alert_below").is_none(), "{cleared}");
    let response = call(app, BALANCE_PATCH, patch_balance("{", token)).await;
    run.expect(BALANCE_PATCH, &response, 400, "invalid_json");
    for refused in [
        json!({}),
        json!({"alert_below": -1}),
        json!({"alert_below": "500"}),
        json!({"alert_below": 1_000_000_000_001_u64}),
    ] {
        let refused = refused.to_string();
        run.refused_body(BALANCE_PATCH, &refused);
        let response = call(app, BALANCE_PATCH, patch_balance(&refused, token)).await;
        assert_eq!(
            run.expect(BALANCE_PATCH, &response, 400, "invalid_field")["field"],
            "alert_below"
        );
    }
    let response = call(
        app,
        BALANCE_PATCH,
        patch_balance(&oversized("alert_below"), token),
    )
    .await;
    run.expect(BALANCE_PATCH, &response, 413, "payload_too_large");
}

/// A key id of the right form that no key has (the sample event's).
const UNKNOWN_KEY_ID: &str = "AAAAAAAAAAAAAAAAAAAAAA";

/// `POST /keys/` with this body, as `authorization` (a login token, or
/// a key to be refused).
fn create_key(body: &str, authorization: &str) -> Request {
    request("keys", Some(body), Some(authorization))
}

/// `GET /keys/` as `authorization`.
fn list_keys(authorization: &str) -> Request {
    request("keys-list", None, Some(authorization))
}

/// `DELETE /keys/<id>` as `authorization`.
fn delete_key(id: &str, authorization: &str) -> Request {
    let mut request = request("keys-delete-unknown", None, Some(authorization));
    *request.uri_mut() = format!("https://127.0.0.1/keys/{id}").parse().unwrap();
    request
}

/// `PATCH /keys/<id>` with this body, as `authorization`.
fn patch_key(id: &str, body: &str, authorization: &str) -> Request {
    let mut request = with_method(
        request("keys", Some(body), Some(authorization)),
        Method::PATCH,
    );
    *request.uri_mut() = format!("https://127.0.0.1/keys/{id}").parse().unwrap();
    request
}

/// `GET /usage/?<query>` as `authorization`.
fn usage_request(query: &str, authorization: &str) -> Request {
    let mut request = chats_request(query, Some(authorization));
    *request.uri_mut() = format!("https://127.0.0.1/usage/?{query}").parse().unwrap();
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
    // Each boxed: the callers' futures hold only a pointer to it.
    let result = match path {
        "/register/" => Box::pin(register::handle(app, request)).await,
        "/login/" => Box::pin(login::handle(app, request)).await,
        "/chat/" => Box::pin(chat::handle(app, request)).await,
        "/chats/" => history::handle(app, request).await,
        "/usage/" => Box::pin(usage::handle(app, request)).await,
        "/balance/" => balance::handle(app, request).await,
        "/logout/" => logout::handle(app, request).await,
        "/keys/" | "/keys/{id}" => Box::pin(keys::handle(app, request)).await,
        // The answer may be a stream, which a task of its own writes: read
        // to its end, it is held to the spec as the others are. One arm
        // for both, each handler boxed: this future sits in every caller's.
        "/v1/chat/completions" | "/v1/responses" => {
            type Answer = std::pin::Pin<
                Box<
                    dyn std::future::Future<
                            Output = Result<Response<StreamBody>, lambda_http::Error>,
                        > + Send,
                >,
            >;
            let answer: Answer = match path {
                "/v1/responses" => Box::pin(responses::handle(sharing(app), request)),
                _ => Box::pin(completions::handle(sharing(app), request)),
            };
            return buffered(answer.await.unwrap()).await;
        }
        // With the embedding models the app serves, or else the local
        // embedder a deployment without a catalog serves (`make run`).
        "/v1/embeddings" => {
            let mut twin = quiet_app(app.config.clone(), app.store.client().clone());
            twin.store = app.store.clone();
            twin.models = app.models.clone();
            if app.models.embedding_models().is_empty() {
                let local = chat_model::local_embedding(app.config.pricing);
                twin.models = twin.models.with_embedding(local.into_iter().collect());
            }
            Box::pin(embeddings::handle(&twin, request)).await
        }
        // As its `main` serves it: the name of the model the app answers with.
        "/v1/models" => {
            let listed: Vec<chat_core::openai::ListedModel> = (app.models.all().iter())
                .map(|m| chat_core::openai::ListedModel {
                    id: m.id.clone(),
                    pricing: m.pricing,
                    kind: chat_core::catalog::ModelKind::Chat,
                })
                .collect();
            models::handle(app, &listed, request).await
        }
        other => panic!("no handler for {other}"),
    };
    result.unwrap()
}

/// `POST /v1/chat/completions` with this body and `Authorization` (none
/// for `None`).
fn completion(body: &Value, authorization: Option<&str>) -> Request {
    completion_request(authorization, &body.to_string())
}

/// `POST /v1/embeddings` with this body and `Authorization`.
fn embedding(body: &Value, authorization: Option<&str>) -> Request {
    request("embeddings", Some(&body.to_string()), authorization)
}

/// Texts the local embedder (`dummy-embedding`) takes.
fn texts() -> Value {
    json!({"model": "dummy-embedding", "input": ["Hello", "how are you?"]})
}

/// `events/models.json` with this `Authorization` (none for `None`).
fn models_request(authorization: Option<&str>) -> Request {
    request("models", None, authorization)
}

/// A conversation the server takes: a system prompt, then one user turn.
fn hello(model: &str) -> Value {
    json!({
        "model": model,
        "messages": [
            {"role": "system", "content": "Answer in one sentence."},
            {"role": "user", "content": "Hello, how are you?"},
        ],
    })
}

/// What `hello` asks, as a Responses request.
fn response_body(model: &str) -> Value {
    json!({"model": model, "instructions": "Answer in one sentence.", "input": "Hello, how are you?"})
}

/// `body` with `fields` added (or replaced).
fn with(mut body: Value, fields: Value) -> Value {
    let fields = fields.as_object().unwrap().clone();
    body.as_object_mut().unwrap().extend(fields);
    body
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// A valid request for each operation, with `token` where one is needed.
fn valid_request(target: Target<'_>, token: &str, username: &str) -> Request {
    match target {
        REGISTER => request("register", Some(&credentials(username, PASSWORD)), None),
        LOGIN => request("login", Some(&credentials(username, PASSWORD)), None),
        CHAT => request("chat", None, Some(token)),
        CHATS => chats_request("", Some(token)),
        BALANCE => request("balance", None, Some(token)),
        BALANCE_PATCH => patch_balance(r#"{"alert_below": 500}"#, token),
        LOGOUT => request("logout", None, Some(token)),
        KEYS_CREATE => create_key(r#"{"name": "ci"}"#, token),
        KEYS_LIST => list_keys(token),
        KEYS_DELETE => delete_key(UNKNOWN_KEY_ID, token),
        KEYS_PATCH => patch_key(UNKNOWN_KEY_ID, "{}", token),
        USAGE => usage_request("", token),
        COMPLETIONS => completion(&hello("dummy"), Some(&bearer(token))),
        RESPONSES => completion(&response_body("dummy"), Some(&bearer(token))),
        MODELS => models_request(Some(&bearer(token))),
        EMBEDDINGS => embedding(&texts(), Some(&bearer(token))),
        other => panic!("no valid request for {other}"),
    }
}

/// A completion request with every field the spec documents, each in a
/// value the server takes (the unsupported ones in a value that asks for
/// nothing), streamed with its usage.
fn every_field() -> Value {
    json!({
        "model": "dummy",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Be kind."}]},
            {"role": "user", "content": "Hi", "name": "alice"},
            {"role": "assistant", "content": "Hello", "refusal": null, "tool_calls": [],
             "function_call": null, "audio": null},
            {"role": "user", "content": [{"type": "text", "text": "How "}, {"type": "text", "text": "are you?"}]},
        ],
        "max_completion_tokens": 5,
        "max_tokens": null,
        "temperature": 0.7,
        "top_p": 1,
        "stop": ["END", "\n\n"],
        "stream": true,
        "stream_options": {"include_usage": true, "include_obfuscation": false},
        "n": 1,
        "user": "alice-1",
        "metadata": {"team": "a"},
        "store": false,
        "service_tier": "auto",
        "parallel_tool_calls": true,
        "safety_identifier": "s-1",
        "prompt_cache_key": "k-1",
        "tools": [],
        "tool_choice": null,
        "functions": [],
        "function_call": null,
        "logprobs": false,
        "top_logprobs": null,
        "logit_bias": {},
        "seed": null,
        "audio": null,
        "prediction": null,
        "web_search_options": {},
        "reasoning_effort": null,
        "verbosity": null,
        "frequency_penalty": 0,
        "presence_penalty": 0.0,
        "modalities": ["text"],
        "response_format": {"type": "text"},
    })
}

/// Completion requests the schema refuses, and the field the server's
/// 400 names: one per rule the schema states.
fn refused_fields() -> Vec<(Value, &'static str)> {
    let user = |content: Value| json!({"model": "dummy", "messages": [{"role": "user", "content": content}]});
    let hi = || hello("dummy");
    vec![
        (json!({"model": "dummy"}), "messages"),
        (
            json!({"messages": [{"role": "user", "content": "Hi"}]}),
            "model",
        ),
        (with(hi(), json!({"model": " \t"})), "model"),
        (with(hi(), json!({"model": 4})), "model"),
        (with(hi(), json!({"messages": []})), "messages"),
        (with(hi(), json!({"messages": "Hi"})), "messages"),
        (user(json!(" \n")), "messages"),
        (user(json!("a".repeat(8001))), "messages"),
        (user(json!([])), "messages"),
        (
            user(json!([{"type": "image_url", "image_url": {"url": "x"}}])),
            "messages",
        ),
        (
            user(json!([{"type": "text", "text": "x", "extra": 1}])),
            "messages",
        ),
        (
            with(
                hi(),
                json!({"messages": [{"role": "tool", "content": "x"}]}),
            ),
            "messages",
        ),
        (
            with(
                hi(),
                json!({"messages": [{"role": "user", "content": "x", "refusal": "no"}]}),
            ),
            "messages",
        ),
        (
            with(
                hi(),
                json!({"messages": [{"role": "user", "content": "x", "tool_calls": [{}]}]}),
            ),
            "messages",
        ),
        (with(hi(), json!({"n": 2})), "n"),
        (with(hi(), json!({"temperature": 2.5})), "temperature"),
        (with(hi(), json!({"top_p": -0.5})), "top_p"),
        (with(hi(), json!({"max_tokens": 0})), "max_tokens"),
        (
            with(hi(), json!({"max_completion_tokens": 8193})),
            "max_completion_tokens",
        ),
        (
            with(hi(), json!({"max_tokens": 5, "max_completion_tokens": 5})),
            "max_tokens",
        ),
        (with(hi(), json!({"stop": ""})), "stop"),
        (
            with(hi(), json!({"stop": ["a", "b", "c", "d", "e"]})),
            "stop",
        ),
        (with(hi(), json!({"stream": "yes"})), "stream"),
        (
            with(hi(), json!({"stream_options": {"include_usage": true}})),
            "stream_options",
        ),
        (
            with(hi(), json!({"stream": false, "stream_options": {}})),
            "stream_options",
        ),
        (
            with(
                hi(),
                json!({"stream": true, "stream_options": {"nope": true}}),
            ),
            "stream_options",
        ),
        (
            with(hi(), json!({"tools": [{"type": "function"}]})),
            "tools",
        ),
        (with(hi(), json!({"seed": 0})), "seed"),
        (with(hi(), json!({"logprobs": true})), "logprobs"),
        (
            with(hi(), json!({"presence_penalty": 0.5})),
            "presence_penalty",
        ),
        (
            with(hi(), json!({"modalities": ["text", "audio"]})),
            "modalities",
        ),
        (
            with(hi(), json!({"response_format": {"type": "json_object"}})),
            "response_format",
        ),
    ]
}

/// Completion requests the schema allows and the server refuses, each for
/// a rule no schema can state (the description says each): the order of
/// the turns, and limits over several parts or messages. Schemathesis's
/// hooks keep its valid requests clear of each.
fn beyond_the_schema() -> Vec<(&'static str, Value)> {
    let conversation = |messages: Value| json!({"model": "dummy", "messages": messages});
    let say = |role: &str, content: Value| json!({"role": role, "content": content});
    let part = |text: String| json!({"type": "text", "text": text});
    vec![
        (
            "the turns start with the assistant",
            conversation(json!([
                say("assistant", json!("Hi")),
                say("user", json!("Hi"))
            ])),
        ),
        (
            "the turns end with the assistant",
            conversation(json!([
                say("user", json!("Hi")),
                say("assistant", json!("Hi"))
            ])),
        ),
        (
            "no turn, only a system prompt",
            conversation(json!([say("system", json!("Be brief."))])),
        ),
        (
            "text parts that join into blank text",
            conversation(json!([say(
                "user",
                json!([part(" ".into()), part("\n".into())])
            )])),
        ),
        (
            "text parts that join into more than 8000 characters",
            conversation(json!([say(
                "user",
                json!([part("a".repeat(4000)), part("b".repeat(4001))])
            )])),
        ),
        (
            "messages of more than 32000 characters in all",
            conversation(json!((0..5)
                .map(|_| say("user", json!("c".repeat(8000))))
                .collect::<Vec<_>>())),
        ),
    ]
}

/// Another app on `app`'s tables, with registration `mode`
/// (`REGISTRATION`).
fn with_registration(app: &App, mode: Registration) -> App {
    let mut config = app.config.clone();
    config.registration = mode;
    quiet_app(config, app.store.client().clone())
}

/// Another app on `app`'s tables whose users may start one chat or
/// completion a minute (`CHATS_PER_MINUTE=1`): the cap is the store's,
/// set when an app is made.
fn one_chat_a_minute(app: &App) -> App {
    let mut config = app.config.clone();
    config.chats_per_minute = 1;
    quiet_app(config, app.store.client().clone())
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
fn model_answering(stub: &ConverseStub) -> Arc<chat_model::BedrockResponder> {
    let mut model = ModelConfig::new(MODEL_ID);
    model.max_attempts = 1;
    Arc::new(stub.responder(model))
}

// Parts of every_documented_response_comes_from_a_real_request_and_matches_the_spec,
// each boxed there: inline, their futures would make the test's own too
// large for a test thread's stack.

/// `POST /register/` under each `REGISTRATION`.
async fn registration_modes(run: &mut Run, app: &App) {
    // Open registration (the default) ignores `invite`, whatever it holds:
    // why its schema states no type.
    let odd_invite = json!({"username": "frank", "password": PASSWORD, "invite": 7}).to_string();
    run.accepted_body(REGISTER, &odd_invite);
    let response = call(app, REGISTER, request("register", Some(&odd_invite), None)).await;
    run.expect(REGISTER, &response, 201, "");
    // REGISTRATION=closed: refused before the body is read.
    let closed = with_registration(app, Registration::Closed);
    for refused in [credentials("erin", PASSWORD), "{".into()] {
        let response = call(&closed, REGISTER, request("register", Some(&refused), None)).await;
        run.expect(REGISTER, &response, 403, "registration_closed");
    }
    // REGISTRATION=invite: a code is required, good for one registration;
    // one of another type than a string is malformed.
    let invited = with_registration(app, Registration::Invite);
    let code = app
        .store
        .create_invite("openapi.rs", Timestamp::now())
        .await
        .unwrap();
    let with_invite = |username: &str, invite: Value| {
        json!({"username": username, "password": PASSWORD, "invite": invite}).to_string()
    };
    for refused in [
        credentials("erin", PASSWORD),
        with_invite("erin", json!(null)),
        with_invite("erin", json!("inv_AAAAAAAAAAAAAAAAAAAAAA")),
        with_invite("erin", json!("not a code")),
    ] {
        run.accepted_body(REGISTER, &refused);
        let response = call(
            &invited,
            REGISTER,
            request("register", Some(&refused), None),
        )
        .await;
        run.expect(REGISTER, &response, 403, "invalid_invite");
    }
    let response = call(
        &invited,
        REGISTER,
        request("register", Some(&with_invite("erin", json!(7))), None),
    )
    .await;
    assert_eq!(
        run.expect(REGISTER, &response, 400, "invalid_field")["field"],
        "invite"
    );
    let good = with_invite("erin", json!(code));
    run.accepted_body(REGISTER, &good);
    let response = call(&invited, REGISTER, request("register", Some(&good), None)).await;
    run.expect(REGISTER, &response, 201, "");
    let spent = with_invite("grace", json!(code));
    let response = call(&invited, REGISTER, request("register", Some(&spent), None)).await;
    run.expect(REGISTER, &response, 403, "invalid_invite");
}

/// `POST /login/` slowed down after too many wrong passwords, and
/// `/login/` and `/register/` past their per-IP caps.
async fn slowed_login(run: &mut Run, app: &App) {
    // Past the free five, frank's next login waits, right password or not,
    // up to a minute; as would a name nobody has.
    for name in ["frank", "nobody-at-all"] {
        slow_down(app, name).await;
        let waiting = credentials(name, PASSWORD);
        let response = call(app, LOGIN, request("login", Some(&waiting), None)).await;
        run.expect(LOGIN, &response, 429, "too_many_attempts");
    }
    // One password check and one account an hour per address.
    let mut config = app.config.clone();
    config.source_limits = SourceLimits {
        login_checks_per_minute: 1,
        registrations_per_hour: 1,
    };
    let capped = quiet_app(config, app.store.client().clone());
    let ip = "198.51.100.23";
    for (target, name, body, status, code) in [
        (
            LOGIN,
            "login",
            credentials("alice", "not-the-password"),
            401,
            "invalid_credentials",
        ),
        (
            LOGIN,
            "login",
            credentials("alice", PASSWORD),
            429,
            "ip_rate_limited",
        ),
        (
            REGISTER,
            "register",
            credentials("henry", PASSWORD),
            201,
            "",
        ),
        (
            REGISTER,
            "register",
            credentials("irene", PASSWORD),
            429,
            "ip_rate_limited",
        ),
    ] {
        let response = call(&capped, target, with_body(event_from(name, ip), &body)).await;
        run.expect(target, &response, status, code);
    }
}

/// `request` as a browser page on `origin` sends it.
fn from_origin(mut request: Request, origin: &str) -> Request {
    request
        .headers_mut()
        .insert("origin", origin.parse().unwrap());
    request
}

/// A browser's preflight of `route` (`/v1/...`) from `origin`.
fn preflight(route: &str, origin: &str) -> Request {
    let (name, method) = match route {
        "/v1/models" => ("models", "GET"),
        _ => ("completions", "POST"),
    };
    let mut request = with_method(from_origin(event(name), origin), Method::OPTIONS);
    let headers = request.headers_mut();
    headers.remove("authorization");
    headers.insert("access-control-request-method", method.parse().unwrap());
    headers.insert(
        "access-control-request-headers",
        "authorization, content-type, x-stainless-lang"
            .parse()
            .unwrap(),
    );
    request
}

/// The `/v1/` routes called by browser pages: every origin of a list is
/// named back, on the preflight and on the answer; any other is not.
async fn browsers_on_v1(run: &mut Run, app: &App, token: &str) {
    let mut config = app.config.clone();
    let origins = ["https://app.example", "https://admin.example"];
    config.cors = chat_core::cors::AllowedOrigins::parse(Some(&origins.join(",")));
    let listed = quiet_app(config, app.store.client().clone());
    // Each call boxed: the completion's future is large.
    let send = |target, request| Box::pin(call(&listed, target, request));
    for (route, target) in [
        ("/v1/models", MODELS),
        ("/v1/chat/completions", COMPLETIONS),
    ] {
        let method = if target == MODELS { "GET" } else { "POST" };
        for origin in origins {
            let response = send(target, preflight(route, origin)).await;
            run.expect(Target::OpenAiPreflight, &response, 204, "");
            let headers = response.headers();
            assert_eq!(headers["access-control-allow-origin"], origin);
            assert_eq!(
                headers["access-control-allow-methods"],
                format!("{method}, OPTIONS")
            );
        }
        let stranger = send(target, preflight(route, "https://evil.example")).await;
        run.expect(Target::OpenAiPreflight, &stranger, 204, "");
        assert!(stranger
            .headers()
            .get("access-control-allow-origin")
            .is_none());
    }
    for origin in origins {
        let models = from_origin(models_request(Some(&bearer(token))), origin);
        let response = send(MODELS, models).await;
        run.expect(MODELS, &response, 200, "");
        assert_eq!(response.headers()["access-control-allow-origin"], origin);
        let chat = from_origin(completion(&hello("dummy"), Some(&bearer(token))), origin);
        let response = send(COMPLETIONS, chat).await;
        run.expect(COMPLETIONS, &response, 200, "");
        assert_eq!(response.headers()["access-control-allow-origin"], origin);
    }
    let stranger = from_origin(models_request(None), "https://evil.example");
    let refused = send(MODELS, stranger).await;
    run.expect(MODELS, &refused, 401, "invalid_api_key");
    assert!(refused
        .headers()
        .get("access-control-allow-origin")
        .is_none());
}

/// `POST /keys/`, `GET /keys/`, `DELETE /keys/{id}`, and a key used where a
/// token is, as the user whose login `token` is.
/// Returns a key (and its id) that made no chat yet, for [`key_limits`].
async fn api_keys(run: &mut Run, app: &App, token: &str, whole: &Value) -> (String, String) {
    let ci = json!({"name": "ci", "expires_in_days": 90}).to_string();
    run.accepted_body(KEYS_CREATE, &ci);
    let response = call(app, KEYS_CREATE, create_key(&ci, token)).await;
    let created = run.expect(KEYS_CREATE, &response, 201, "");
    let key = created["key"].as_str().unwrap().to_owned();
    let key_id = created["id"].as_str().unwrap().to_owned();
    assert!(key.starts_with(created["prefix"].as_str().unwrap()));
    assert!(created["expires_at"].is_string(), "{created}");
    let forever = json!({"name": "forever", "expires_in_days": null}).to_string();
    run.accepted_body(KEYS_CREATE, &forever);
    let response = call(app, KEYS_CREATE, create_key(&forever, token)).await;
    let forever = run.expect(KEYS_CREATE, &response, 201, "");
    let forever_id = forever["id"].clone();
    let forever_key = forever["key"].as_str().unwrap().to_owned();
    // The key works where a login token does, in either scheme, under
    // /v1/ too (what TokenAuth and BearerAuth say).
    let message = json!({"message": "Hello, how are you?"}).to_string();
    let response = call(
        app,
        CHAT,
        request("chat", Some(&message), Some(&format!("Token {key}"))),
    )
    .await;
    run.expect(CHAT, &response, 200, "");
    let response = call(app, COMPLETIONS, completion(whole, Some(&bearer(&key)))).await;
    run.expect(COMPLETIONS, &response, 200, "");
    let response = call(app, MODELS, models_request(Some(&bearer(&key)))).await;
    run.expect(MODELS, &response, 200, "");
    // Listed without the key: the used one with its day, the other never.
    let response = call(app, KEYS_LIST, list_keys(token)).await;
    let list = run.expect(KEYS_LIST, &response, 200, "");
    assert!(!list.to_string().contains(&key), "a list never shows a key");
    let used: Vec<(&Value, &Value)> = list["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (&k["id"], &k["last_used"]))
        .collect();
    assert_eq!(
        used,
        [
            (&json!(key_id), &json!(Timestamp::now().day())),
            (&forever_id, &Value::Null)
        ]
    );
    // Only a login session manages keys.
    for (target, refused) in [
        (KEYS_CREATE, create_key(&ci, &key)),
        (KEYS_LIST, list_keys(&bearer(&key))),
        (KEYS_DELETE, delete_key(&key_id, &format!("Token {key}"))),
        (KEYS_PATCH, patch_key(&key_id, "{}", &key)),
    ] {
        let response = call(app, target, refused).await;
        run.expect(target, &response, 403, "session_required");
    }
    let limited = (forever_key, forever_id.as_str().unwrap().to_owned());
    // Malformed requests.
    let response = call(app, KEYS_CREATE, create_key("{", token)).await;
    run.expect(KEYS_CREATE, &response, 400, "invalid_json");
    for (refused, field) in [
        (json!({}), "name"),
        (json!({"name": " \u{3000}"}), "name"),
        (
            json!({"name": "ci", "expires_in_days": 0}),
            "expires_in_days",
        ),
    ] {
        let refused = refused.to_string();
        run.refused_body(KEYS_CREATE, &refused);
        let response = call(app, KEYS_CREATE, create_key(&refused, token)).await;
        assert_eq!(
            run.expect(KEYS_CREATE, &response, 400, "invalid_field")["field"],
            field
        );
    }
    let response = call(app, KEYS_CREATE, create_key(&oversized("name"), token)).await;
    run.expect(KEYS_CREATE, &response, 413, "payload_too_large");
    // Up to the most a user may hold, and one more.
    for i in 2..MAX_API_KEYS {
        let more = json!({ "name": format!("key {i}") }).to_string();
        let response = call(app, KEYS_CREATE, create_key(&more, token)).await;
        run.expect(KEYS_CREATE, &response, 201, "");
    }
    let response = call(app, KEYS_CREATE, create_key(&ci, token)).await;
    assert_eq!(
        run.expect(KEYS_CREATE, &response, 409, "too_many_keys")["limit"],
        MAX_API_KEYS
    );
    // Revoked once (and refused from then on): then 404, as any
    // well-formed id of no key of the caller's.
    run.parameter(KEYS_DELETE, "path", "id", &key_id, true);
    let response = call(app, KEYS_DELETE, delete_key(&key_id, token)).await;
    run.expect(KEYS_DELETE, &response, 204, "");
    let response = call(app, CHAT, request("chat", Some(&message), Some(&key))).await;
    run.expect(CHAT, &response, 401, "unauthorized");
    run.parameter(KEYS_DELETE, "path", "id", &key_id, true);
    let response = call(app, KEYS_DELETE, delete_key(&key_id, token)).await;
    run.expect(KEYS_DELETE, &response, 404, "key_not_found");
    // An id not of KeyId's form is malformed input, as the schema says.
    run.parameter(KEYS_DELETE, "path", "id", "nope", false);
    let response = call(app, KEYS_DELETE, delete_key("nope", token)).await;
    run.expect(KEYS_DELETE, &response, 400, "invalid_field");
    limited
}

/// A key's budget and models, set with `PATCH /keys/{id}` on the key
/// `key` (id `id`) of the user whose login `token` is, and the refusals
/// they make on `/chat/` and `/v1/`; then `PATCH`'s own refusals, and
/// `GET /usage/`.
async fn key_limits(run: &mut Run, app: &App, token: &str, whole: &Value, key: &str, id: &str) {
    let message = json!({"message": "Hello, how are you?"}).to_string();
    let budget = json!({"budget": {"tokens": 100, "period": "day"}}).to_string();
    run.accepted_body(KEYS_PATCH, &budget);
    run.parameter(KEYS_PATCH, "path", "id", id, true);
    let response = call(app, KEYS_PATCH, patch_key(id, &budget, token)).await;
    assert_eq!(run.expect(KEYS_PATCH, &response, 200, "")["spent"], 0);
    let response = call(app, CHAT, request("chat", Some(&message), Some(key))).await;
    run.expect(CHAT, &response, 200, "");
    let response = call(app, CHAT, request("chat", Some(&message), Some(key))).await;
    let refused = run.expect(CHAT, &response, 402, "key_budget_exceeded");
    assert_eq!(refused["left"], 0);
    let response = call(app, COMPLETIONS, completion(whole, Some(&bearer(key)))).await;
    run.expect(COMPLETIONS, &response, 429, "key_budget_exceeded");
    let response = call(app, EMBEDDINGS, embedding(&texts(), Some(&bearer(key)))).await;
    run.expect(EMBEDDINGS, &response, 429, "key_budget_exceeded");
    let models = json!({"budget": null, "models": ["haiku"]}).to_string();
    run.accepted_body(KEYS_PATCH, &models);
    let response = call(app, KEYS_PATCH, patch_key(id, &models, token)).await;
    run.expect(KEYS_PATCH, &response, 200, "");
    let response = call(app, CHAT, request("chat", Some(&message), Some(key))).await;
    run.expect(CHAT, &response, 403, "model_not_allowed");
    let response = call(app, COMPLETIONS, completion(whole, Some(&bearer(key)))).await;
    run.expect(COMPLETIONS, &response, 403, "model_not_allowed");
    let response = call(app, EMBEDDINGS, embedding(&texts(), Some(&bearer(key)))).await;
    run.expect(EMBEDDINGS, &response, 403, "model_not_allowed");
    let response = call(app, KEYS_PATCH, patch_key(id, "{", token)).await;
    run.expect(KEYS_PATCH, &response, 400, "invalid_json");
    for (refused, field) in [
        (json!({"budget": 5}), "budget"),
        (json!({"budget": {"tokens": 0, "period": "day"}}), "budget"),
        (json!({"models": []}), "models"),
    ] {
        let refused = refused.to_string();
        run.refused_body(KEYS_PATCH, &refused);
        let response = call(app, KEYS_PATCH, patch_key(id, &refused, token)).await;
        assert_eq!(
            run.expect(KEYS_PATCH, &response, 400, "invalid_field")["field"],
            field
        );
    }
    let response = call(app, KEYS_PATCH, patch_key(id, &oversized("models"), token)).await;
    run.expect(KEYS_PATCH, &response, 413, "payload_too_large");
    run.parameter(KEYS_PATCH, "path", "id", "nope", false);
    let response = call(app, KEYS_PATCH, patch_key("nope", "{}", token)).await;
    run.expect(KEYS_PATCH, &response, 400, "invalid_field");
    run.parameter(KEYS_PATCH, "path", "id", UNKNOWN_KEY_ID, true);
    let response = call(app, KEYS_PATCH, patch_key(UNKNOWN_KEY_ID, "{}", token)).await;
    run.expect(KEYS_PATCH, &response, 404, "key_not_found");

    // GET /usage/: by each group, paged, and its refusals.
    for group in ["day", "model", "key"] {
        run.parameter(USAGE, "query", "group_by", group, true);
        let query = format!("group_by={group}&limit=1&from=2000-01-01");
        let response = call(app, USAGE, usage_request(&query, token)).await;
        let page = run.expect(USAGE, &response, 200, "");
        assert_eq!(page["group_by"], group);
    }
    run.parameter(USAGE, "query", "from", "2026-12-01T00:00:00Z", true);
    run.parameter(USAGE, "query", "limit", "1000", true);
    for (query, name, value) in [
        ("group_by=week", "group_by", "week"),
        ("from=yesterday", "from", "yesterday"),
        ("to=2026-12-02T25:00:00Z", "to", "2026-12-02T25:00:00Z"),
        ("limit=0", "limit", "0"),
    ] {
        let documented_invalid = !matches!(name, "to");
        if documented_invalid {
            run.parameter(USAGE, "query", name, value, false);
        }
        let response = call(app, USAGE, usage_request(query, token)).await;
        assert_eq!(
            run.expect(USAGE, &response, 400, "invalid_field")["field"],
            name
        );
    }
}

/// The per-user chat rate, on `/chat/` and `/v1/`, as the user whose login
/// `token` is; `message` a chat's body, `whole` a completion's.
/// A tool call by the dummy, whole and streamed: its message and its
/// deltas as the spec has them.
async fn tool_calls(run: &mut Run, app: &App, auth: &str) {
    let weather = json!([{"type": "function", "function": {"name": "weather"}}]);
    let calling = with(hello("dummy"), json!({"tools": weather}));
    run.accepted_body(COMPLETIONS, &calling.to_string());
    let response = call(app, COMPLETIONS, completion(&calling, Some(auth))).await;
    let answer = run.expect(COMPLETIONS, &response, 200, "");
    assert_eq!(answer["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        answer["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "weather"
    );
    let streamed_call = with(calling, json!({"stream": true}));
    let response = call(app, COMPLETIONS, completion(&streamed_call, Some(auth))).await;
    let (chunks, error) = run.expect_stream(&response, false);
    assert!(error.is_none());
    assert!(chunks
        .iter()
        .any(|c| c["choices"][0]["delta"]["tool_calls"][0]["id"] == "call_dummy_0"));
}

/// POST /v1/responses: whole and streamed (the dummy, then a paid model
/// from the stand-in, failing before and after its first piece), its
/// refusals, a key still being answered (409) and reused (422), an empty
/// balance; each answer held to the spec.
async fn responses_route(run: &mut Run, app: &mut App, auth: &str, pauper: &str) {
    let send = |body: &Value| completion(body, Some(auth));
    for stream in [false, true] {
        let body = with(response_body("dummy"), json!({"stream": stream}));
        run.accepted_body(RESPONSES, &body.to_string());
        let response = call(&*app, RESPONSES, send(&body)).await;
        run.expect(RESPONSES, &response, 200, "");
    }
    for body in ["{", "[]", ""] {
        let response = call(&*app, RESPONSES, completion_request(Some(auth), body)).await;
        run.expect(RESPONSES, &response, 400, "invalid_json");
    }
    for (fields, param) in [
        (
            json!({"previous_response_id": "resp_1"}),
            "previous_response_id",
        ),
        (json!({"store": true}), "store"),
        (json!({"tools": [{"type": "web_search"}]}), "tools"),
        (json!({"input": 7}), "input"),
        (json!({"max_output_tokens": 0}), "max_output_tokens"),
    ] {
        let body = with(response_body("dummy"), fields);
        run.refused_body(RESPONSES, &body.to_string());
        let response = call(&*app, RESPONSES, send(&body)).await;
        let error = run.expect(RESPONSES, &response, 400, "invalid_field");
        assert_eq!(error["error"]["param"], param, "{body}");
    }
    let response = call(&*app, RESPONSES, send(&response_body("gpt-4o"))).await;
    run.expect(RESPONSES, &response, 404, "model_not_found");
    let filler = "a".repeat(completions::request::MAX_BODY_BYTES);
    let huge = json!({"model": "dummy", "input": filler});
    let response = call(&*app, RESPONSES, send(&huge)).await;
    run.expect(RESPONSES, &response, 413, "payload_too_large");
    let broke = completion(&response_body("dummy"), Some(pauper));
    let response = call(&*app, RESPONSES, broke).await;
    run.expect(RESPONSES, &response, 429, "insufficient_quota");

    // A paid model: whole, streamed, failing midway and before any piece.
    let paid = app;
    let asked = response_body(MODEL_ID);
    let streamed = with(asked.clone(), json!({"stream": true}));
    let replying =
        ConverseStub::start(Answer::Stream(Streamed::pieces(&["Hel", "lo"]).usage(9, 2)));
    paid.models = chat_core::served::Models::only(model_answering(&replying), paid.config.pricing);
    for body in [&asked, &streamed] {
        let response = call(&*paid, RESPONSES, send(body)).await;
        run.expect(RESPONSES, &response, 200, "");
    }
    let failing = ConverseStub::start(Answer::Stream(
        Streamed::pieces(&["Hel", "lo"]).failing_after(1, "modelStreamErrorException"),
    ));
    paid.models = chat_core::served::Models::only(model_answering(&failing), paid.config.pricing);
    let response = call(&*paid, RESPONSES, send(&streamed)).await;
    let observed = run.expect_raw(RESPONSES, &response, 200);
    assert!(String::from_utf8_lossy(&observed).contains("event: error\n"));
    for (answer, status, code) in [
        (
            Answer::error(400, "ValidationException"),
            502,
            "model_error",
        ),
        (
            Answer::error(429, "ThrottlingException"),
            503,
            "model_unavailable",
        ),
    ] {
        let stub = ConverseStub::start(answer);
        paid.models = chat_core::served::Models::only(model_answering(&stub), paid.config.pricing);
        for body in [&asked, &streamed] {
            let response = call(&*paid, RESPONSES, send(body)).await;
            run.expect(RESPONSES, &response, status, code);
        }
    }
    // A key whose first response is still with the model (409), then the
    // same key with another body (422).
    let gate = Gate::default();
    let slow = ConverseStub::start(Answer::gated(&gate, Answer::text("slow")));
    paid.models = chat_core::served::Models::only(model_answering(&slow), paid.config.pricing);
    let keyed = |body: &Value| {
        let mut request = send(body);
        request
            .headers_mut()
            .insert("idempotency-key", "v1-responses-key".parse().unwrap());
        request
    };
    let (first, second) = tokio::join!(call(&*paid, RESPONSES, keyed(&asked)), async {
        while slow.call_count() == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let second = call(&*paid, RESPONSES, keyed(&asked)).await;
        gate.open();
        second
    });
    run.expect(RESPONSES, &first, 200, "");
    run.expect(RESPONSES, &second, 409, "idempotency_key_in_progress");
    let other = with(asked.clone(), json!({"max_output_tokens": 5}));
    let response = call(&*paid, RESPONSES, keyed(&other)).await;
    run.expect(RESPONSES, &response, 422, "idempotency_key_reused");
    paid.models = chat_core::served::Models::only(Arc::new(DummyResponder), paid.config.pricing);
}

/// `POST /v1/embeddings`: the local embedder, then Titan on the stand-in;
/// and a model of the other kind refused on every route.
async fn embeddings_route(run: &mut Run, app: &mut App, token: &str, pauper: &str) {
    let auth = bearer(token);
    let send = |body: &Value| embedding(body, Some(&auth));
    for format in ["float", "base64"] {
        let body = with(
            texts(),
            json!({"encoding_format": format, "dimensions": 256}),
        );
        run.accepted_body(EMBEDDINGS, &body.to_string());
        let response = call(&*app, EMBEDDINGS, send(&body)).await;
        let answer = run.expect(EMBEDDINGS, &response, 200, "");
        assert_eq!(answer["usage"]["prompt_tokens"], 4);
    }
    for body in ["{", "[]", ""] {
        let response = call(
            &*app,
            EMBEDDINGS,
            request("embeddings", Some(body), Some(&auth)),
        )
        .await;
        run.expect(EMBEDDINGS, &response, 400, "invalid_json");
    }
    for (fields, param) in [
        (json!({"input": [[1, 2]]}), "input"),
        (json!({"input": ""}), "input"),
        (json!({"dimensions": 300}), "dimensions"),
        (json!({"encoding_format": "int8"}), "encoding_format"),
    ] {
        let body = with(texts(), fields);
        let response = call(&*app, EMBEDDINGS, send(&body)).await;
        let error = run.expect(EMBEDDINGS, &response, 400, "invalid_field");
        assert_eq!(error["error"]["param"], param, "{body}");
    }
    let unknown = with(texts(), json!({"frobnicate": 1}));
    run.refused_body(EMBEDDINGS, &unknown.to_string());
    let response = call(&*app, EMBEDDINGS, send(&unknown)).await;
    run.expect_unknown_field(EMBEDDINGS, &response, "frobnicate");
    // A chat model here, an embedding model on each chat route.
    let response = call(
        &*app,
        EMBEDDINGS,
        send(&with(texts(), json!({"model": "dummy"}))),
    )
    .await;
    run.expect(EMBEDDINGS, &response, 400, "wrong_model_kind");
    let local = chat_model::local_embedding(app.config.pricing);
    app.models = app
        .models
        .clone()
        .with_embedding(local.into_iter().collect());
    let response = call(
        &*app,
        COMPLETIONS,
        completion(&hello("dummy-embedding"), Some(&auth)),
    )
    .await;
    run.expect(COMPLETIONS, &response, 400, "wrong_model_kind");
    let asked = response_body("dummy-embedding");
    let response = call(&*app, RESPONSES, completion(&asked, Some(&auth))).await;
    run.expect(RESPONSES, &response, 400, "wrong_model_kind");
    let chat = json!({"message": "Hello", "model": "dummy-embedding"}).to_string();
    let response = call(&*app, CHAT, request("chat", Some(&chat), Some(token))).await;
    run.expect(CHAT, &response, 400, "wrong_model_kind");
    let response = call(
        &*app,
        EMBEDDINGS,
        send(&with(texts(), json!({"model": "ada-002"}))),
    )
    .await;
    run.expect(EMBEDDINGS, &response, 404, "model_not_found");
    let filler = "a".repeat(embeddings::request::MAX_BODY_BYTES);
    let response = call(
        &*app,
        EMBEDDINGS,
        send(&with(texts(), json!({"input": filler}))),
    )
    .await;
    run.expect(EMBEDDINGS, &response, 413, "payload_too_large");
    let response = call(&*app, EMBEDDINGS, embedding(&texts(), Some(pauper))).await;
    run.expect(EMBEDDINGS, &response, 429, "insufficient_quota");

    // Titan on the stand-in: hold, one call per input, settle; refusals.
    let titan = |stub: &ConverseStub| {
        let mut model = ModelConfig::new("amazon.titan-embed-text-v2:0");
        model.max_attempts = 1;
        chat_core::served::EmbeddingModel {
            id: "titan".to_owned(),
            embedder: Arc::new(stub.embedder(model)),
            pricing: chat_core::pricing::Pricing::Usage(chat_core::pricing::UsagePrices {
                input_per_1000: 1000,
                ..Default::default()
            }),
        }
    };
    let chat_models = app.models.clone();
    let asked = with(texts(), json!({"model": "titan"}));
    for (answer, status, code) in [
        (Answer::embedding(3), 200, ""),
        (
            Answer::error(400, "ValidationException"),
            502,
            "model_error",
        ),
        (
            Answer::error(429, "ThrottlingException"),
            503,
            "model_unavailable",
        ),
    ] {
        let stub = ConverseStub::start(answer);
        app.models = chat_models.clone().with_embedding(vec![titan(&stub)]);
        let response = call(&*app, EMBEDDINGS, send(&asked)).await;
        run.expect(EMBEDDINGS, &response, status, code);
    }
    // A key whose first request is still with the model (409), then the
    // same key with another body (422).
    let gate = Gate::default();
    let slow = ConverseStub::start(Answer::gated(&gate, Answer::embedding(3)));
    app.models = chat_models.clone().with_embedding(vec![titan(&slow)]);
    let keyed = |body: &Value| with_header(send(body), "idempotency-key", "v1-embeddings-key");
    let (first, second) = tokio::join!(call(&*app, EMBEDDINGS, keyed(&asked)), async {
        while slow.call_count() == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let second = call(&*app, EMBEDDINGS, keyed(&asked)).await;
        gate.open();
        second
    });
    run.expect(EMBEDDINGS, &first, 200, "");
    run.expect(EMBEDDINGS, &second, 409, "idempotency_key_in_progress");
    let other = with(asked.clone(), json!({"dimensions": 512}));
    let response = call(&*app, EMBEDDINGS, keyed(&other)).await;
    run.expect(EMBEDDINGS, &response, 422, "idempotency_key_reused");
    app.models = chat_models;
}

async fn rate_limits(run: &mut Run, app: &App, token: &str, message: &str, whole: &Value) {
    let auth = bearer(token);
    // One chat or completion a minute: alice has had hers this minute
    // (unless it just turned), so the next is refused until it turns; in
    // OpenAI's words under /v1/, with what OpenAPI cannot tie to the code
    // there: `Retry-After` and `x-should-retry: true`.
    let capped = one_chat_a_minute(app);
    let chat = || request("chat", Some(message), Some(token));
    let completing = || completion(whole, Some(&auth));
    let asked = response_body("dummy");
    let responding = || completion(&asked, Some(&auth));
    let embedding_texts = || embedding(&texts(), Some(&auth));
    let cases: [(Target<'_>, &dyn Fn() -> Request, &str); 4] = [
        (CHAT, &chat, "rate_limited"),
        (COMPLETIONS, &completing, "rate_limit_exceeded"),
        (RESPONSES, &responding, "rate_limit_exceeded"),
        (EMBEDDINGS, &embedding_texts, "rate_limit_exceeded"),
    ];
    for (target, send, code) in cases {
        let mut response = call(&capped, target, send()).await;
        if response.status() == 200 {
            run.expect(target, &response, 200, "");
            response = call(&capped, target, send()).await;
        }
        run.expect(target, &response, 429, code);
        let wait: u64 = response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&wait), "{wait}");
        if target.is_openai() {
            assert_eq!(response.headers()["x-should-retry"], "true");
        }
    }
}

#[tokio::test]
async fn every_documented_response_comes_from_a_real_request_and_matches_the_spec() {
    // On the heap: `#[tokio::test]` pins its future on the test thread's
    // stack, and a debug build moves it through several frames there; this
    // one, a case for every documented response, outgrew the 2 MiB stack.
    Box::pin(every_documented_response()).await
}

async fn every_documented_response() {
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
    Box::pin(registration_modes(&mut run, &app)).await;

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
    Box::pin(slowed_login(&mut run, &app)).await;
    Box::pin(browsers_on_v1(&mut run, &app, &token)).await;

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
    // A model the catalog does not list (404), and one it does, by name.
    let unknown = json!({"message": "hi", "model": "no-such-model"}).to_string();
    let response = call(&app, CHAT, request("chat", Some(&unknown), Some(&token))).await;
    run.expect(CHAT, &response, 404, "model_not_found");
    let named = json!({"message": "hi", "model": "dummy"}).to_string();
    let response = call(&app, CHAT, request("chat", Some(&named), Some(&token))).await;
    run.expect(CHAT, &response, 200, "");
    // The model answers with an error (502), then is throttled (503).
    let refusing = ConverseStub::start(Answer::error(400, "ValidationException"));
    app.models = chat_core::served::Models::only(model_answering(&refusing), app.config.pricing);
    let response = call(&app, CHAT, request("chat", Some(&body), Some(&token))).await;
    run.expect(CHAT, &response, 502, "model_error");
    let throttled = ConverseStub::start(Answer::error(429, "ThrottlingException"));
    app.models = chat_core::served::Models::only(model_answering(&throttled), app.config.pricing);
    let response = call(&app, CHAT, request("chat", Some(&body), Some(&token))).await;
    run.expect(CHAT, &response, 503, "model_unavailable");
    Box::pin(keys_in_progress(&mut run, &mut app, &token, &body)).await;
    app.models = chat_core::served::Models::only(Arc::new(DummyResponder), app.config.pricing);

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
    Box::pin(alert_threshold(&mut run, &app, &token)).await;

    // POST /v1/chat/completions, answered by the dummy: whole, then
    // streamed with and without the usage chunk.
    let auth = bearer(&token);
    let whole = hello("dummy");
    run.accepted_body(COMPLETIONS, &whole.to_string());
    let response = call(&app, COMPLETIONS, completion(&whole, Some(&auth))).await;
    let answer = run.expect(COMPLETIONS, &response, 200, "");
    assert_eq!(answer["choices"][0]["message"]["content"], "AI response");
    assert_eq!(response.headers()["tokens-charged"], "100");
    for include_usage in [true, false] {
        let mut body = with(hello("dummy"), json!({"stream": true}));
        if include_usage {
            body = with(body, json!({"stream_options": {"include_usage": true}}));
        }
        run.accepted_body(COMPLETIONS, &body.to_string());
        let response = call(&app, COMPLETIONS, completion(&body, Some(&auth))).await;
        let (chunks, error) = run.expect_stream(&response, include_usage);
        assert_eq!(
            (streamed_text(&chunks), error),
            ("AI response".into(), None)
        );
    }
    Box::pin(tool_calls(&mut run, &app, &auth)).await;
    // Every field the request documents at once, each in a value the
    // server takes: nothing documented is refused.
    let everything = every_field();
    let fields: BTreeSet<String> = run.inputs(COMPLETIONS);
    let mut sent: BTreeSet<String> = everything.as_object().unwrap().keys().cloned().collect();
    sent.insert("Idempotency-Key".to_owned());
    assert_eq!(sent, fields, "every_field() sends every documented field");
    run.accepted_body(COMPLETIONS, &everything.to_string());
    let mut keyed = completion(&everything, Some(&auth));
    keyed
        .headers_mut()
        .insert("idempotency-key", "every field".parse().unwrap());
    let response = call(&app, COMPLETIONS, keyed).await;
    let (chunks, _) = run.expect_stream(&response, true);
    assert_eq!(streamed_text(&chunks), "AI response");
    // Bodies that are not one JSON object, then bodies the schema refuses,
    // each refused naming the field the schema refuses it for.
    for body in ["{", "[]", ""] {
        let response = call(&app, COMPLETIONS, completion_request(Some(&auth), body)).await;
        run.expect(COMPLETIONS, &response, 400, "invalid_json");
    }
    for (body, param) in refused_fields() {
        run.refused_body(COMPLETIONS, &body.to_string());
        let response = call(&app, COMPLETIONS, completion(&body, Some(&auth))).await;
        let error = run.expect(COMPLETIONS, &response, 400, "invalid_field");
        assert_eq!(error["error"]["param"], param, "{body}");
    }
    let unknown = with(hello("dummy"), json!({"frobnicate": 1}));
    run.refused_body(COMPLETIONS, &unknown.to_string());
    let response = call(&app, COMPLETIONS, completion(&unknown, Some(&auth))).await;
    run.expect_unknown_field(COMPLETIONS, &response, "frobnicate");
    // What no schema can say: the schema allows these, the server refuses
    // them (so Schemathesis's hooks keep its valid requests clear of them).
    for (why, body) in beyond_the_schema() {
        run.accepted_body(COMPLETIONS, &body.to_string());
        let response = call(&app, COMPLETIONS, completion(&body, Some(&auth))).await;
        let error = run.expect(COMPLETIONS, &response, 400, "invalid_field");
        assert_eq!(error["error"]["param"], "messages", "{why}");
    }
    let other_model = hello("gpt-4o");
    run.accepted_body(COMPLETIONS, &other_model.to_string());
    let response = call(&app, COMPLETIONS, completion(&other_model, Some(&auth))).await;
    run.expect(COMPLETIONS, &response, 404, "model_not_found");
    let filler = "a".repeat(completions::request::MAX_BODY_BYTES);
    let huge = json!({"model": "dummy", "messages": [{"role": "user", "content": filler}]});
    let response = call(&app, COMPLETIONS, completion(&huge, Some(&auth))).await;
    run.expect(COMPLETIONS, &response, 413, "payload_too_large");
    // The user granted nothing: OpenAI's exhausted quota, not to be
    // retried and with no wait (what OpenAPI cannot tie to the code: the
    // same status answers the rate limit otherwise, below).
    let response = call(
        &app,
        COMPLETIONS,
        completion(&whole, Some(&bearer(&pauper))),
    )
    .await;
    run.expect(COMPLETIONS, &response, 429, "insufficient_quota");
    assert_eq!(response.headers()["x-should-retry"], "false");
    assert!(response.headers().get("retry-after").is_none());

    Box::pin(responses_route(&mut run, &mut app, &auth, &bearer(&pauper))).await;
    Box::pin(embeddings_route(
        &mut run,
        &mut app,
        &token,
        &bearer(&pauper),
    ))
    .await;

    // GET /v1/models
    let response = call(&app, MODELS, models_request(Some(&auth))).await;
    assert_eq!(
        run.expect(MODELS, &response, 200, "")["data"][0]["id"],
        "dummy"
    );

    let (key, key_id) = Box::pin(api_keys(&mut run, &app, &token, &whole)).await;
    Box::pin(key_limits(&mut run, &app, &token, &whole, &key, &key_id)).await;

    // A paid model (the stand-in Bedrock): hold, model, settle; whole and
    // streamed, as the model lists itself.
    let replying =
        ConverseStub::start(Answer::Stream(Streamed::pieces(&["Hel", "lo"]).usage(9, 2)));
    app.models = chat_core::served::Models::only(model_answering(&replying), app.config.pricing);
    let response = call(&app, MODELS, models_request(Some(&auth))).await;
    assert_eq!(
        run.expect(MODELS, &response, 200, "")["data"][0]["id"],
        MODEL_ID
    );
    let paid = hello(MODEL_ID);
    let response = call(&app, COMPLETIONS, completion(&paid, Some(&auth))).await;
    let answer = run.expect(COMPLETIONS, &response, 200, "");
    assert_eq!(answer["choices"][0]["message"]["content"], "Hello");
    assert_eq!(response.headers()["tokens-charged"], "100");
    let streamed = with(
        paid.clone(),
        json!({"stream": true, "stream_options": {"include_usage": true}}),
    );
    let response = call(&app, COMPLETIONS, completion(&streamed, Some(&auth))).await;
    let (chunks, error) = run.expect_stream(&response, true);
    assert_eq!((streamed_text(&chunks), error), ("Hello".into(), None));
    assert_eq!(
        chunks.last().unwrap()["usage"],
        json!({"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11, "prompt_tokens_details": {"cached_tokens": 0}})
    );
    // The model fails after its first piece: what it wrote was sent (and
    // is charged), then an error event ends the stream, without [DONE].
    let failing = ConverseStub::start(Answer::Stream(
        Streamed::pieces(&["Hel", "lo"]).failing_after(1, "modelStreamErrorException"),
    ));
    app.models = chat_core::served::Models::only(model_answering(&failing), app.config.pricing);
    let streamed = with(paid.clone(), json!({"stream": true}));
    let response = call(&app, COMPLETIONS, completion(&streamed, Some(&auth))).await;
    let (chunks, error) = run.expect_stream(&response, false);
    assert_eq!(streamed_text(&chunks), "Hel");
    assert_eq!(
        error_code_of(&error.unwrap()).as_deref(),
        Some("model_error")
    );
    // The model fails before anything was sent: an error status (502),
    // or busy (503), even for a stream.
    for (answer, status, code) in [
        (
            Answer::error(400, "ValidationException"),
            502,
            "model_error",
        ),
        (
            Answer::error(429, "ThrottlingException"),
            503,
            "model_unavailable",
        ),
    ] {
        let stub = ConverseStub::start(answer);
        app.models = chat_core::served::Models::only(model_answering(&stub), app.config.pricing);
        for body in [&paid, &streamed] {
            let response = call(&app, COMPLETIONS, completion(body, Some(&auth))).await;
            run.expect(COMPLETIONS, &response, status, code);
        }
    }
    app.models = chat_core::served::Models::only(Arc::new(DummyResponder), app.config.pricing);

    Box::pin(rate_limits(&mut run, &app, &token, &body, &whole)).await;

    // Every operation that takes a token refuses a missing or forged one:
    // `unauthorized`, or OpenAI's `invalid_api_key` under /v1/.
    let forged = well_formed_token();
    for target in [
        CHAT,
        CHATS,
        BALANCE,
        BALANCE_PATCH,
        LOGOUT,
        KEYS_CREATE,
        KEYS_LIST,
        KEYS_DELETE,
        KEYS_PATCH,
        USAGE,
        COMPLETIONS,
        RESPONSES,
        MODELS,
        EMBEDDINGS,
    ] {
        let (scheme, code) = match target.is_openai() {
            true => ("Bearer", "invalid_api_key"),
            false => ("Token", "unauthorized"),
        };
        for auth in [
            None,
            Some(format!("{scheme} garbage")),
            Some(format!("{scheme} {forged}")),
            Some(forged.clone()),
        ] {
            let mut request = valid_request(target, "x", "alice");
            match auth {
                None => {
                    request.headers_mut().remove("authorization");
                }
                Some(auth) => request = with_auth(request, &auth),
            }
            let response = call(&app, target, request).await;
            run.expect(target, &response, 401, code);
        }
    }

    // A disabled account: login, chat, history, balance and keys refuse it.
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
    for target in [
        BALANCE_PATCH,
        KEYS_CREATE,
        KEYS_LIST,
        KEYS_DELETE,
        KEYS_PATCH,
        USAGE,
        COMPLETIONS,
        RESPONSES,
        MODELS,
        EMBEDDINGS,
    ] {
        let response = call(&app, target, valid_request(target, &token, "alice")).await;
        run.expect(target, &response, 403, "account_disabled");
    }
    assert!(app.store.set_disabled(&alice, false).await.unwrap());

    // POST /logout/, last: it ends the session the cases above use.
    let response = call(&app, LOGOUT, request("logout", None, Some(&token))).await;
    run.expect(LOGOUT, &response, 204, "");

    // Requests no operation matches, through the fallback and through each
    // handler invoked with the wrong method; under /v1/ in OpenAI's shape.
    // (Over the spec's operations: that they are the routes is
    // every_route_is_an_operation_and_every_operation_a_route's to say.)
    let response = call(&app, Target::Fallback, aimed("GET", "/nope/")).await;
    run.expect(Target::Fallback, &response, 404, "not_found");
    for path in ["/v1/nope", "/v1/chat", "/v1"] {
        let response = call(&app, Target::Fallback, aimed("GET", path)).await;
        run.expect(Target::OpenAiFallback, &response, 404, "not_found");
    }
    let operations = run.spec.operations();
    for (method, path) in &operations {
        let served: BTreeSet<&str> = operations
            .iter()
            .filter(|(_, p)| p == path)
            .map(|(m, _)| m.as_str())
            .collect();
        let wrong = ["GET", "POST", "PUT", "DELETE", "PATCH"]
            .into_iter()
            .find(|m| !served.contains(m))
            .unwrap();
        let target = operation(method, path);
        let documented = match target.is_openai() {
            true => Target::OpenAiFallback,
            false => Target::Fallback,
        };
        for to in [Target::Fallback, target] {
            let response = call(&app, to, aimed(wrong, path)).await;
            run.expect(documented, &response, 405, "method_not_allowed");
            let allow = response.headers()["allow"].to_str().unwrap();
            assert_eq!(
                allow.split(", ").collect::<BTreeSet<_>>(),
                served,
                "{wrong} {path}: Allow"
            );
        }
    }

    // The store failing: our bug (500), or out of reach (503).
    for (broken, status, code) in [
        (app_without_tables(), 500, "internal_error"),
        (app_without_dynamodb(), 503, "unavailable"),
    ] {
        for (method, path) in &operations {
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

/// The operationId of the route `method` `path`: the resource it acts
/// on, the path's last segment that is not a parameter (`chats` for
/// `/chats/`, `completions` for `/v1/chat/completions`); when one resource
/// has several operations (`keys`: POST and GET `/keys/`, DELETE
/// `/keys/{id}`), the resource and the method, `keys_post`, so that each id
/// is still unique (as OpenAPI requires) and still follows from the route
/// alone, leaving nothing to choose or to check by hand. The path, not the
/// function: a function's crate can be renamed without a client's
/// generated method names changing.
fn operation_id(method: &str, path: &str) -> String {
    let resource = |path: &str| {
        path.split('/')
            .rfind(|segment| !segment.is_empty() && !segment.starts_with('{'))
            .unwrap_or_default()
            .to_owned()
    };
    let name = resource(path);
    let operations = all_routes().filter(|(_, p, _)| resource(p) == name).count();
    match operations {
        1 => name,
        _ => format!("{name}_{}", method.to_ascii_lowercase()),
    }
}

#[test]
fn every_route_is_an_operation_and_every_operation_a_route() {
    let spec = spec();
    let routes: BTreeSet<(String, String)> = all_routes()
        .map(|(method, path, _)| (method.to_string(), path.to_string()))
        .collect();
    let operations: BTreeSet<(String, String)> = spec.operations().into_iter().collect();
    assert_eq!(operations, routes);
    let ids: BTreeSet<String> = all_routes().map(|(m, p, _)| operation_id(m, p)).collect();
    assert_eq!(
        ids.len(),
        routes.len(),
        "one operationId per operation: {ids:?}"
    );
    // The operation is named after its resource (see operation_id), and
    // the OpenAI-compatible ones are tagged so.
    for (method, path, _) in all_routes() {
        let operation = spec.operation(method, path).unwrap();
        assert_eq!(
            operation["operationId"],
            operation_id(method, path),
            "{method} {path}"
        );
        let tagged = operation["tags"]
            .as_array()
            .is_some_and(|tags| tags.contains(&json!("openai")));
        assert_eq!(
            tagged,
            OPENAI_ROUTES.iter().any(|(_, p, _)| p == path),
            "{path}"
        );
    }
}

#[test]
fn an_operation_takes_a_token_exactly_when_it_can_refuse_one() {
    let spec = spec();
    for (method, path) in spec.operations() {
        let target = operation(&method, &path);
        let op = spec.operation(&method, &path).unwrap();
        // Under /v1/ the token is an OpenAI API key: a bearer token, and
        // refused as OpenAI refuses a key.
        let (scheme, code) = match target.is_openai() {
            true => ("BearerAuth", "invalid_api_key"),
            false => ("TokenAuth", "unauthorized"),
        };
        let schemes: BTreeSet<&str> = op["security"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_object)
            .flat_map(|requirement| requirement.keys().map(String::as_str))
            .collect();
        let refuses = spec
            .response(target, 401)
            .is_some_and(|r| spec.error_codes(r).contains(code));
        let expected: BTreeSet<&str> = refuses.then_some(scheme).into_iter().collect();
        assert_eq!(schemes, expected, "{target}: security vs 401 {code}");
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
            ApiError::UnknownModel(_) => 16,
            ApiError::KeyNotFound => 17,
            ApiError::TooManyKeys { .. } => 18,
            ApiError::SessionRequired => 19,
            ApiError::TooManyAttempts { .. } => 20,
            ApiError::RateLimited { .. } => 21,
            ApiError::RegistrationClosed => 22,
            ApiError::InvalidInvite => 23,
            ApiError::TooManyOpenCalls { .. } => 24,
            ApiError::ChargedFailure { .. } => 25,
            ApiError::IpRateLimited { .. } => 26,
            ApiError::KeyBudgetExceeded { .. } => 27,
            ApiError::ModelNotAllowed(_) => 28,
            ApiError::WrongModelKind { .. } => 29,
        }
    }
    const VARIANTS: usize = 30;
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
            balance: Credits::new(40),
            cost: Credits::new(100),
        },
        ApiError::IdempotencyKeyReused,
        ApiError::NotFound,
        ApiError::MethodNotAllowed {
            allowed: "POST".into(),
        },
        ApiError::Unavailable("throttled".into()),
        ApiError::ModelError("refused".into()),
        ApiError::ModelUnavailable("throttled".into()),
        ApiError::Internal("bug".into()),
        ApiError::IdempotencyKeyInProgress,
        ApiError::AccountDisabled,
        ApiError::UnknownModel("gpt-4o".into()),
        ApiError::KeyNotFound,
        ApiError::TooManyKeys { limit: 10 },
        ApiError::SessionRequired,
        ApiError::TooManyAttempts { retry_after: 4 },
        ApiError::RateLimited { retry_after: 9 },
        ApiError::RegistrationClosed,
        ApiError::InvalidInvite,
        ApiError::TooManyOpenCalls { retry_after: 2 },
        ApiError::ChargedFailure {
            failure: Box::new(ApiError::ModelUnavailable("stalled".into())),
            charged: Credits::new(7),
        },
        ApiError::IpRateLimited { retry_after: 30 },
        ApiError::KeyBudgetExceeded {
            budget: Credits::new(250),
            period: chat_core::domain::Period::Day,
            left: Credits::new(50),
            cost: Credits::new(100),
            resets_at: chat_core::clock::Timestamp::from_unix_seconds(1_796_256_000),
        },
        ApiError::ModelNotAllowed("haiku".into()),
        ApiError::WrongModelKind {
            model: "titan".into(),
            kind: chat_core::catalog::ModelKind::Embedding,
        },
    ];
    let listed: BTreeSet<usize> = all.iter().map(variant).collect();
    assert_eq!(listed, (0..VARIANTS).collect(), "one value of each variant");
    all
}

/// Each `ApiError` in both of its shapes: ours everywhere but under
/// `/v1/`, OpenAI's there (with its own code and status for a few).
#[test]
fn every_error_code_is_an_api_error_and_every_api_error_is_documented_as_it_responds() {
    let spec = spec();
    // (target, status) of every response that lists each code, per shape
    // (keyed by whether it is OpenAI's).
    let mut listed_at: BTreeMap<(bool, String), Vec<(String, u16)>> = BTreeMap::new();
    for (target, status, code) in documented(&spec) {
        if !code.is_empty() {
            let openai = Target::parse(&target).is_openai();
            listed_at
                .entry((openai, code))
                .or_default()
                .push((target, status));
        }
    }
    let mut produced = BTreeSet::new();
    let mut undocumented = Vec::new();
    for error in every_api_error() {
        let openai = Observed::of(&OpenAiError::of(&error).into_response());
        let name = format!("{error:?}");
        let ours = Observed::of(&error.into_response());
        let mut places = 0;
        for (shape, observed) in [(false, &ours), (true, &openai)] {
            let code = observed.error_code().expect("an error body");
            produced.insert((shape, code.clone()));
            for (target, status) in listed_at.get(&(shape, code.clone())).into_iter().flatten() {
                places += 1;
                assert_eq!(*status, observed.status, "{code} at {target}");
                let problems = spec.check_response(Target::parse(target), observed);
                assert!(problems.is_empty(), "{code}: {problems:?}");
            }
        }
        if places == 0 {
            undocumented.push(name);
        }
    }
    assert!(
        undocumented.is_empty(),
        "ApiErrors in openapi.yaml in neither shape: {undocumented:?}"
    );
    // Every documented code is one some ApiError answers with in that
    // shape. (An error may be one only /v1/ meets, or only the rest.)
    let documented: BTreeSet<(bool, String)> = listed_at.into_keys().collect();
    let strays: Vec<_> = documented.difference(&produced).collect();
    assert!(strays.is_empty(), "documented, no ApiError's: {strays:?}");
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
    // What OpenAI's SDKs send: `Authorization: Bearer <key>`.
    let scheme = &doc["components"]["securitySchemes"]["BearerAuth"];
    assert_eq!(
        (&scheme["type"], &scheme["scheme"]),
        (&json!("http"), &json!("bearer"))
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
    // of the fallbacks is an error.
    for target in [Target::Fallback, Target::OpenAiFallback] {
        for (status, _) in spec.responses(target) {
            assert!(status.starts_with('4'), "{target} {status}");
        }
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
        // A media type or parameter: `example` beside `schema`, or named
        // Example Objects in `examples`.
        if let (Some(schema), Some(example)) = (map.get("schema"), map.get("example")) {
            let errors = spec.validate(schema, example);
            assert!(errors.is_empty(), "{at}/example: {errors:?}");
            *checked += 1;
        }
        if let (Some(schema), Some(Value::Object(examples))) =
            (map.get("schema"), map.get("examples"))
        {
            for (name, example) in examples {
                let errors = spec.validate(schema, &example["value"]);
                assert!(errors.is_empty(), "{at}/examples/{name}: {errors:?}");
                *checked += 1;
            }
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

/// The validator fails a wrong response against the real spec, through its
/// `$ref`s: a body of the wrong type, with a field missing or one too many,
/// and a stream event whose JSON breaks `ChatCompletionChunk` (reached
/// through `contentSchema`) or is not JSON.
#[test]
fn a_response_breaking_the_spec_fails() {
    let spec = spec();
    let json = ("content-type", "application/json");
    let response = |status: u16, header: (&str, &str), body: &str| Observed {
        status,
        headers: vec![(header.0.to_owned(), header.1.to_owned())],
        body: body.as_bytes().to_vec(),
    };
    assert!(spec
        .check_response(BALANCE, &response(200, json, r#"{"tokens": 3900}"#))
        .is_empty());
    for (body, expected) in [
        (r#"{"tokens": "3900"}"#, "$.tokens: expected integer"),
        (r#"{"tokens": -1}"#, "$.tokens: -1 is below the minimum 0"),
        ("{}", "the required property tokens is missing"),
        (
            r#"{"tokens": 1, "debt": 2}"#,
            "the property debt is not documented",
        ),
    ] {
        let problems = spec.check_response(BALANCE, &response(200, json, body));
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "{body}: {expected} in {problems:?}"
        );
    }
    let sse = ("content-type", "text/event-stream");
    for (body, expected) in [
        ("data: {\"id\": 1}\n\n", "its JSON breaks contentSchema"),
        ("data: {\"id\"\n\n", "is not JSON"),
    ] {
        let problems = spec.check_response(COMPLETIONS, &response(200, sse, body));
        assert!(
            problems
                .iter()
                .any(|p| p.contains("event 0") && p.contains(expected)),
            "{body:?}: {expected} in {problems:?}"
        );
    }
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

/// The completion request's schema against the server's own parser
/// (`completions::request::parse`), both ways: every body the schema
/// allows the parser takes, and every body it refuses the parser refuses,
/// naming the same field; but for `beyond_the_schema()`, the rules no
/// schema can state. Schemathesis sends many more bodies over HTTP; this
/// holds each rule at its bounds.
#[test]
fn the_completion_request_schema_takes_what_the_parser_takes() {
    use completions::request::{parse, MAX_MESSAGES, MAX_STOP_SEQUENCES};
    let spec = spec();
    let schema = json!({"$ref": "#/components/schemas/CompletionRequest"});
    // The dummy's cap, and the most MODEL_MAX_TOKENS may be: the spec's
    // maximum.
    let cap = chat_model::MAX_MAX_TOKENS;
    let server = |body: &Value| -> Result<(), String> {
        let map = body.as_object().cloned().unwrap_or_default();
        match parse(map, cap) {
            Ok(_) => Ok(()),
            Err(ApiError::InvalidField { field, .. }) => Err(field.into_owned()),
            Err(other) => panic!("{body}: {other:?}"),
        }
    };
    let agree = |body: Value| {
        let errors = spec.validate(&schema, &body);
        let verdict = server(&body);
        assert_eq!(
            errors.is_empty(),
            verdict.is_ok(),
            "{body}: the spec says {errors:?}, the server {verdict:?}"
        );
    };

    agree(hello("dummy"));
    agree(every_field());
    for (body, param) in refused_fields() {
        assert!(!spec.validate(&schema, &body).is_empty(), "{body}");
        assert_eq!(server(&body), Err(param.to_owned()), "{body}");
    }
    for (why, body) in beyond_the_schema() {
        assert!(spec.validate(&schema, &body).is_empty(), "{why}");
        assert_eq!(server(&body), Err("messages".to_owned()), "{why}");
    }

    // Each number at and past its bounds, and null for each optional field.
    let hi = || hello("dummy");
    for (field, values) in [
        (
            "temperature",
            json!([0, 0.0, 2, 2.0, 1.5, -0.0, -0.001, 2.001, "1", true]),
        ),
        ("top_p", json!([0, 1, 0.5, 1.001, -1, "0.5"])),
        ("max_tokens", json!([1, 5.0, cap, cap + 1, 0, -1, 1.5, "5"])),
        (
            "max_completion_tokens",
            json!([1, 5.0, cap, cap + 1, 0, 2.5]),
        ),
        ("n", json!([1, 1.0, 0, 2, -1, "1", true])),
        ("stream", json!([true, false, 0, "true"])),
    ] {
        for value in values.as_array().unwrap().iter().chain([&Value::Null]) {
            agree(with(hi(), json!({ field: value })));
        }
    }
    for (field, value) in [("model", json!(null)), ("messages", json!(null))] {
        agree(with(hi(), json!({ field: value })));
    }
    // `stop`: a string or up to MAX_STOP_SEQUENCES strings, none empty.
    let many = |n: usize| json!((0..n).map(|i| format!("s{i}")).collect::<Vec<_>>());
    for stop in [
        json!("END"),
        json!(""),
        json!([]),
        many(MAX_STOP_SEQUENCES),
        many(MAX_STOP_SEQUENCES + 1),
        json!(["a", ""]),
        json!(["a", 1]),
        json!(1),
        json!({}),
    ] {
        agree(with(hi(), json!({ "stop": stop })));
    }
    // `stream_options` and `stream`, in every combination.
    for stream in [json!(true), json!(false), json!(null)] {
        for options in [
            json!(null),
            json!({}),
            json!({"include_usage": true}),
            json!({"include_usage": null, "include_obfuscation": true}),
            json!({"include_usage": "yes"}),
            json!({"other": true}),
            json!([]),
            json!(true),
        ] {
            agree(with(
                hi(),
                json!({"stream": stream, "stream_options": options}),
            ));
            agree(with(hi(), json!({"stream_options": options})));
        }
    }
    // Both maximums: refused only when neither is null.
    for (a, b) in [
        (json!(5), json!(5)),
        (json!(5), json!(null)),
        (json!(null), json!(5)),
        (json!(null), json!(null)),
    ] {
        agree(with(
            hi(),
            json!({"max_tokens": a, "max_completion_tokens": b}),
        ));
    }
    // Fields taken in any value, and the unsupported ones, in values that
    // ask for nothing and in values that ask for something.
    let values = json!([null, false, true, 0, 0.0, 1, -0.0, "", "x", [], ["text"], [1], {}, {"type": "text"}, {"a": 1}]);
    let properties = spec
        .pointer("#/components/schemas/CompletionRequest/properties")
        .unwrap();
    for (field, property) in properties.as_object().unwrap() {
        let resolved = spec.resolve(property);
        if resolved.get("enum").is_none() && resolved.get("type").is_some() {
            continue; // the honoured fields, held above
        }
        if ["n", "stop"].contains(&field.as_str()) {
            continue;
        }
        for value in values.as_array().unwrap() {
            agree(with(hi(), json!({ field.as_str(): value })));
        }
    }
    // Messages: their count, roles, fields, content and its limits.
    let user = |content: Value| json!({"role": "user", "content": content});
    let messages = |list: Vec<Value>| json!({"model": "dummy", "messages": list});
    for n in [1, MAX_MESSAGES, MAX_MESSAGES + 1] {
        agree(messages((0..n).map(|_| user(json!("Hi"))).collect()));
    }
    for role in [
        "system",
        "developer",
        "user",
        "assistant",
        "tool",
        "function",
        "User",
        "",
    ] {
        // Between two user turns, so that the turns' order is right.
        agree(messages(vec![
            user(json!("Hi")),
            json!({"role": role, "content": "Hi"}),
            user(json!("Hi")),
        ]));
    }
    for (name, value) in [
        ("name", json!("alice")),
        ("name", json!(7)),
        ("refusal", json!(null)),
        ("refusal", json!([])),
        ("refusal", json!("no")),
        ("tool_calls", json!([])),
        ("tool_calls", json!([{"id": "1"}])),
        ("function_call", json!({})),
        ("audio", json!(null)),
        ("audio", json!({"id": "a"})),
        ("content_parts", json!([])),
    ] {
        let mut message = user(json!("Hi"));
        message[name] = value;
        agree(messages(vec![message]));
    }
    let limit = chat_core::domain::MESSAGE_MAX_CHARS;
    for content in [
        json!("a".repeat(limit)),
        json!("\u{1D11E}".repeat(limit)),
        json!("a".repeat(limit + 1)),
        json!(""),
        json!(" \u{3000}\u{2029}"),
        json!("\u{200B}"),
        json!(null),
        json!(7),
        json!([{"type": "text", "text": "a".repeat(limit)}]),
        json!([{"type": "text", "text": "a".repeat(limit + 1)}]),
        json!([{"type": "text", "text": "Hi"}, {"type": "text", "text": ""}]),
        json!([{"type": "text"}]),
        json!([{"text": "Hi"}]),
        json!([{"type": "text", "text": 7}]),
        json!(["Hi"]),
        json!([{"type": "image_url", "image_url": {"url": PNG_URL}}]),
        json!([{"type": "text", "text": " "}, {"type": "image_url", "image_url": {"url": PNG_URL, "detail": "low"}}]),
        json!([{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]),
        json!([{"type": "image_url", "image_url": {"url": PNG_URL, "detail": "max"}}]),
        json!([{"type": "image_url", "image_url": {"url": PNG_URL}, "extra": 1}]),
        json!([{"type": "input_audio", "input_audio": {}}]),
    ] {
        agree(messages(vec![user(content)]));
    }
    // Images only in a user's message.
    agree(messages(vec![
        json!({"role": "system", "content": [{"type": "image_url", "image_url": {"url": PNG_URL}}]}),
        user(json!("Hi")),
    ]));
    // Tools, the choice among them, and a round trip of calls and results.
    let tool = |name: &str| json!({"type": "function", "function": {"name": name, "parameters": {"type": "object"}}});
    let call = |id: &str| json!({"id": id, "type": "function", "function": {"name": "weather", "arguments": "{}"}});
    let round = |assistant: Value, tool_message: Value| json!({"model": "dummy", "tools": [tool("weather")], "messages": [user(json!("Hi")), assistant, tool_message]});
    for tools in [
        json!([tool("weather")]),
        json!([tool("a b")]),
        json!([tool("")]),
        json!([{"type": "function", "function": {"name": "w", "strict": true, "description": null}}]),
        json!([{"type": "function", "function": {"name": "w", "parameters": []}}]),
        json!([{"type": "function", "function": {"name": "w", "extra": 1}}]),
        json!([{"type": "custom", "custom": {"name": "w"}}]),
        json!([{"type": "function"}]),
        json!({}),
    ] {
        agree(with(hi(), json!({ "tools": tools })));
        for choice in [
            json!("auto"),
            json!("none"),
            json!("required"),
            json!({"type": "function", "function": {"name": "weather"}}),
        ] {
            // A named function that is not among the tools is a rule over
            // two fields, the server's alone (and the hooks').
            let named = choice.get("function").is_some();
            if named && tools[0]["function"]["name"] != "weather" && tools[0]["type"] == "function"
            {
                continue;
            }
            agree(with(hi(), json!({"tools": tools, "tool_choice": choice})));
        }
    }
    for (assistant, tool_message) in [
        (
            json!({"role": "assistant", "content": null, "tool_calls": [call("c1")]}),
            json!({"role": "tool", "tool_call_id": "c1", "content": "sunny"}),
        ),
        (
            json!({"role": "assistant", "content": "Checking.", "tool_calls": [call("c1")]}),
            json!({"role": "tool", "tool_call_id": "c1", "content": ""}),
        ),
        (
            json!({"role": "assistant", "content": "", "tool_calls": [call("c1")]}),
            json!({"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "sunny"}]}),
        ),
        (
            json!({"role": "assistant", "content": null, "tool_calls": [call("c1")]}),
            json!({"role": "tool", "tool_call_id": "", "content": "sunny"}),
        ),
        (
            json!({"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function"}]}),
            json!({"role": "tool", "tool_call_id": "c1", "content": "sunny"}),
        ),
        (
            json!({"role": "assistant", "content": null}),
            json!({"role": "user", "content": "Hi"}),
        ),
        (
            json!({"role": "assistant", "content": null, "tool_calls": [call("c1")]}),
            json!({"role": "tool", "content": "sunny"}),
        ),
    ] {
        agree(round(assistant, tool_message));
    }
    // Past the bodies the schema can judge: the same pattern as
    // ChatRequest's message, which every_request_limit_in_the_spec_is_the_servers
    // holds to the server over all of Unicode (the parser's blank test is
    // ChatMessage's).
    let pattern = |at: &str| spec.pointer(at).unwrap()["pattern"].clone();
    let message = pattern("#/components/schemas/ChatRequest/properties/message");
    assert_eq!(pattern("#/components/schemas/CompletionText"), message);
    assert_eq!(
        pattern("#/components/schemas/CompletionRequest/properties/model"),
        message
    );
}

/// What the keys handler makes of `body` from a user who holds the most
/// keys already: `Ok` if it takes the body (409 `too_many_keys`, which it
/// answers only after reading every field), else the field its 400 names.
/// Its rules are private to functions/keys, so they are asked this way.
async fn key_verdict(app: &App, token: &str, body: &Value) -> Result<(), String> {
    let response = keys::handle(app, create_key(&body.to_string(), token))
        .await
        .unwrap();
    let observed = Observed::of(&response);
    match (observed.status, observed.error_code().as_deref()) {
        (409, Some("too_many_keys")) => Ok(()),
        (400, Some("invalid_field")) => Err(observed.error_field().unwrap()),
        other => panic!("{body}: {other:?}"),
    }
}

/// The API key request's schema against the handler, both ways: every
/// body the schema allows the handler takes, and every body it refuses the
/// handler refuses, naming the field; but for the one rule no schema
/// states, listed. Schemathesis sends many more bodies over HTTP; this
/// holds each rule at its bounds.
#[tokio::test]
async fn the_key_request_schema_takes_what_the_handler_takes() {
    let spec = spec();
    let schema = json!({"$ref": "#/components/schemas/KeyRequest"});
    let app = fresh_app().await;
    let token = signed_up(&app, "keeper").await;
    for i in 0..MAX_API_KEYS {
        let body = json!({ "name": format!("key {i}") }).to_string();
        let response = keys::handle(&app, create_key(&body, &token)).await;
        assert_eq!(response.unwrap().status(), 201);
    }
    let mut bodies: Vec<Value> = Vec::new();
    // The name's characters: every one of the first 256 code points (the
    // control characters among them) and Unicode's other white space, alone
    // and between letters; then its length, counted in characters.
    let white_space = [
        '\u{1680}', '\u{2000}', '\u{2001}', '\u{2002}', '\u{2003}', '\u{2004}', '\u{2005}',
        '\u{2006}', '\u{2007}', '\u{2008}', '\u{2009}', '\u{200A}', '\u{2028}', '\u{2029}',
        '\u{202F}', '\u{205F}', '\u{3000}',
    ];
    // Look-alikes of white space that are not (Unicode's White_Space says).
    let not_white_space = ['\u{180E}', '\u{200B}', '\u{2060}', '\u{FEFF}'];
    let others = ['é', '用', '\u{E000}', '\u{10FFFF}', '𝄞'];
    let chars = (0..0x100_u32)
        .filter_map(char::from_u32)
        .chain(white_space)
        .chain(not_white_space)
        .chain(others);
    for c in chars {
        bodies.push(json!({ "name": c.to_string() }));
        bodies.push(json!({ "name": format!("a{c}b") }));
    }
    for name in [
        String::new(),
        "a".repeat(64),
        "a".repeat(65),
        "𝄞".repeat(64),
        "𝄞".repeat(65),
        " ".repeat(64),
        " a ".into(),
        "\u{3000}\u{A0}\u{85}".into(),
    ] {
        bodies.push(json!({ "name": name }));
    }
    for name in [json!(7), json!(null), json!([]), json!({}), json!(true)] {
        bodies.push(json!({ "name": name }));
    }
    bodies.push(json!({}));
    bodies.push(json!({"expires_in_days": 30}));
    // The expiry: its bounds, its types, and null.
    for days in [
        json!(1),
        json!(3650),
        json!(0),
        json!(3651),
        json!(-1),
        json!(1.5),
        json!("30"),
        json!(true),
        json!([]),
        json!({}),
        json!(null),
    ] {
        bodies.push(json!({"name": "ci", "expires_in_days": days}));
    }
    // A budget and a model list: their bounds, their types, and null.
    for budget in [
        json!({"tokens": 1, "period": "day"}),
        json!({"tokens": 9_007_199_254_740_992_u64, "period": "total"}),
        json!({"tokens": 250, "period": "week"}),
        json!({"tokens": 250, "period": "month"}),
        json!({"tokens": 0, "period": "day"}),
        json!({"tokens": -1, "period": "day"}),
        json!({"tokens": 1.5, "period": "day"}),
        json!({"tokens": 250, "period": "year"}),
        json!({"tokens": 250}),
        json!({"period": "day"}),
        json!({"tokens": 250, "period": "day", "extra": true}),
        json!(250),
        json!("day"),
        json!(null),
    ] {
        bodies.push(json!({"name": "ci", "budget": budget}));
    }
    for models in [
        json!(["haiku"]),
        json!(["a", "b"]),
        json!(["é用𝄞"]),
        json!(["a".repeat(128)]),
        json!(["a".repeat(129)]),
        json!([]),
        json!(["a", "a"]),
        json!([""]),
        json!(["a b"]),
        json!(["a\u{3000}b"]),
        json!(["a\u{85}"]),
        json!(["\u{7}"]),
        json!([3]),
        json!("haiku"),
        json!(null),
        json!((0..21).map(|i| i.to_string()).collect::<Vec<_>>()),
    ] {
        bodies.push(json!({"name": "ci", "models": models}));
    }
    for body in &bodies {
        let errors = spec.validate(&schema, body);
        let verdict = key_verdict(&app, &token, body).await;
        assert_eq!(
            errors.is_empty(),
            verdict.is_ok(),
            "{body}: the spec says {errors:?}, the handler {verdict:?}"
        );
        // And for the field the handler names.
        if let Err(field) = verdict {
            let missing = format!("the required property {field} is missing");
            assert!(
                errors.iter().any(|e| e.starts_with(&format!("$.{field}:"))
                    || e.starts_with(&format!("$.{field}."))
                    || e.starts_with(&format!("$.{field}["))
                    || e.ends_with(&missing)),
                "{body}: the handler names {field}, the spec {errors:?}"
            );
        }
    }
    // JSON Schema's integers include 30.0, and so does the handler (as
    // /v1/'s `max_tokens` does).
    let fraction = json!({"name": "ci", "expires_in_days": 30.0});
    assert!(spec.validate(&schema, &fraction).is_empty());
    assert_eq!(key_verdict(&app, &token, &fraction).await, Ok(()));

    // Over all of Unicode, one character alone: the name's pattern and its
    // `not` together take exactly what the handler's rule does (not
    // `str::trim`med away, not `char::is_control`), and the `not` bars
    // exactly the control characters (anywhere in a name, as the handler
    // refuses them: the bodies above hold that between letters).
    let name = spec.resolve(spec.pointer("#/components/schemas/KeyName").unwrap());
    let compile = |at: &Value| regex_lite::Regex::new(at.as_str().unwrap()).unwrap();
    let (wanted, barred) = (compile(&name["pattern"]), compile(&name["not"]["pattern"]));
    for c in (0..=0x10FFFF_u32).filter_map(char::from_u32) {
        let one = c.to_string();
        assert_eq!(
            wanted.is_match(&one) && !barred.is_match(&one),
            !c.is_whitespace() && !c.is_control(),
            "name {c:?} (U+{:04X})",
            c as u32
        );
        assert_eq!(barred.is_match(&one), c.is_control(), "U+{:04X}", c as u32);
    }
}

/// A 1x1 PNG, inline.
const PNG_URL: &str = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";

/// A key whose first call is still with the model: 409 on /chat/ and /v1,
/// the open-call cap's 429, a replay and a reused key's 422. Its own
/// future, boxed by the caller, keeps the main test's stack small.
async fn keys_in_progress(run: &mut Run, app: &mut App, token: &str, body: &str) {
    let (token, body) = (token.to_owned(), body.to_owned());
    // A key whose first chat is still with the model (409). The model
    // answers each call only once the test has seen what it waits for and
    // opens that call's gate: no window of time to fit in.
    let gates: Vec<Gate> = (0..3).map(|_| Gate::default()).collect();
    let slow = {
        let gates = gates.clone();
        ConverseStub::scripted(move |n| match gates.get(n) {
            Some(gate) => Answer::gated(gate, Answer::text("in a moment")),
            None => Answer::text("in a moment"),
        })
    };
    app.models = chat_core::served::Models::only(model_answering(&slow), app.config.pricing);
    let keyed = || {
        let mut request = request("chat", Some(&body), Some(&token));
        request
            .headers_mut()
            .insert("idempotency-key", "slow-key".parse().unwrap());
        request
    };
    let (first, second) = tokio::join!(call(app, CHAT, keyed()), async {
        // Once the first is with the model, it holds the key.
        while slow.call_count() == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let second = call(app, CHAT, keyed()).await;
        gates[0].open();
        second
    });
    assert_eq!(first.status(), 200);
    run.expect(CHAT, &second, 409, "idempotency_key_in_progress");
    // With a cap of one open model call, a second chat while the first is
    // with the model is refused (429).
    app.store = app.store.clone().with_open_calls_per_user(1);
    let before = slow.call_count();
    let plain = || request("chat", Some(&body), Some(&token));
    let (first, capped) = tokio::join!(call(app, CHAT, plain()), async {
        while slow.call_count() == before {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let capped = call(app, CHAT, plain()).await;
        gates[1].open();
        capped
    });
    assert_eq!(first.status(), 200);
    run.expect(CHAT, &capped, 429, "too_many_open_calls");
    app.store = app
        .store
        .clone()
        .with_open_calls_per_user(chat_core::config::DEFAULT_OPEN_CALLS_PER_USER);
    // The same on /v1: a key whose first completion is still with the
    // model (409), then its replay, and the key with another body (422).
    let auth = bearer(&token);
    let v1_keyed = |body: &Value| {
        let mut request = completion(body, Some(&auth));
        request
            .headers_mut()
            .insert("idempotency-key", "v1-slow-key".parse().unwrap());
        request
    };
    let asked = hello(MODEL_ID);
    let before = slow.call_count();
    let (first, second) = tokio::join!(call(app, COMPLETIONS, v1_keyed(&asked)), async {
        while slow.call_count() == before {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let second = call(app, COMPLETIONS, v1_keyed(&asked)).await;
        gates[2].open();
        second
    });
    let first = run.expect(COMPLETIONS, &first, 200, "");
    run.expect(COMPLETIONS, &second, 409, "idempotency_key_in_progress");
    let replay = call(app, COMPLETIONS, v1_keyed(&asked)).await;
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(run.expect(COMPLETIONS, &replay, 200, ""), first);
    let other = with(hello(MODEL_ID), json!({"max_tokens": 5}));
    let response = call(app, COMPLETIONS, v1_keyed(&other)).await;
    run.expect(COMPLETIONS, &response, 422, "idempotency_key_reused");
}
