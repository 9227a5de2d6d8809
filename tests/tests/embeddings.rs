//! `POST /v1/embeddings`: the catalog's embedding models, answered through
//! the real Bedrock client against the stand-in's `InvokeModel`, metered
//! like a chat (a hold on the inputs' bound, a settle to the tokens the
//! model reports, a release when it read nothing), replayed under an
//! `Idempotency-Key` without a second charge, and refused across kinds.
//! Every test that moves tokens ends with the ledger invariant.

use std::sync::Arc;
use std::time::Duration;

use api_tests::completion::*;
use api_tests::converse_stub::{Answer, ConverseStub};
use api_tests::*;
use chat_core::billing::SETTLE_MARGIN;
use chat_core::catalog::{Catalog, ModelKind};
use chat_core::config::Config;
use chat_core::embedder::{from_base64, Embedder, LocalEmbedder};
use chat_core::served::{EmbeddingModel, Models, ServedModel};
use chat_core::App;
use chat_model::ModelConfig;
use devtools::dynamodb_local::{client, fresh_tables, quiet_app};
use lambda_http::{Body, RequestExt, Response};
use serde_json::{json, Value};

/// A chat model, Titan on the stand-in at 1000 balance tokens per 1000
/// input tokens (one a token), and a local embedder at 500.
const CATALOG: &str = r#"{
  "default": "dummy",
  "models": [
    {"id": "dummy", "flat": 100},
    {"id": "titan", "kind": "embedding", "bedrock_model": "amazon.titan-embed-text-v2:0",
     "price_per_1000": {"input": 1000}},
    {"id": "local", "kind": "embedding", "price_per_1000": {"input": 500}}
  ]
}"#;

/// The app serving [`CATALOG`] as `models_of` would, Titan on `stub`.
async fn app_on(stub: &ConverseStub) -> Arc<App> {
    let client = client();
    let config = Config::with_tables(fresh_tables(&client).await);
    let mut app = quiet_app(config, client);
    let catalog = Catalog::parse(CATALOG).unwrap();
    let mut chat = Vec::new();
    let mut embedding = Vec::new();
    for model in &catalog.models {
        if model.kind == ModelKind::Chat {
            chat.push(ServedModel {
                id: model.id.clone(),
                responder: Arc::new(chat_core::responder::DummyResponder),
                pricing: model.pricing,
            });
            continue;
        }
        let embedder: Arc<dyn Embedder> = match &model.bedrock_model {
            Some(bedrock) => {
                let mut config = ModelConfig::new(bedrock.clone());
                config.max_attempts = 1;
                Arc::new(stub.embedder(config))
            }
            None => Arc::new(LocalEmbedder),
        };
        embedding.push(EmbeddingModel {
            id: model.id.clone(),
            embedder,
            pricing: model.pricing,
        });
    }
    app.models = Models::new(chat, &catalog.default)
        .unwrap()
        .with_embedding(embedding);
    Arc::new(app)
}

/// `POST /v1/embeddings` with `body`, as `token`'s bearer, with an
/// `Idempotency-Key` if given.
async fn embed_as(app: &App, token: &str, key: Option<&str>, body: &Value) -> Response<Body> {
    let mut request = with_auth(
        with_body(event("embeddings"), &body.to_string()),
        &format!("Bearer {token}"),
    );
    if let Some(key) = key {
        request
            .headers_mut()
            .insert("idempotency-key", key.parse().unwrap());
    }
    embeddings::handle(app, request).await.unwrap()
}

async fn tokens(app: &App) -> i64 {
    stored_tokens(app, "alice").await.unwrap()
}

fn header<'a>(response: &'a Response<Body>, name: &str) -> Option<&'a str> {
    response.headers().get(name).map(|v| v.to_str().unwrap())
}

/// The vectors of an answer, whichever way they were written.
fn vectors(body: &Value) -> Vec<Vec<f32>> {
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(index, item)| {
            assert_eq!(item["object"], "embedding");
            assert_eq!(item["index"], index);
            match &item["embedding"] {
                Value::String(text) => from_base64(text).expect("base64 floats"),
                Value::Array(numbers) => {
                    numbers.iter().map(|n| n.as_f64().unwrap() as f32).collect()
                }
                other => panic!("not an embedding: {other}"),
            }
        })
        .collect()
}

#[tokio::test]
async fn a_paid_call_is_charged_exactly_the_tokens_titan_reports() {
    // 7 tokens for the first input, 9 for the second.
    let stub = ConverseStub::scripted(|n| Answer::embedding([7, 9][n % 2]));
    let app = app_on(&stub).await;
    let token = signed_up(&app, "alice").await;
    let before = tokens(&app).await;
    let body = json!({
        "model": "titan", "input": ["first text", "second text"],
        "encoding_format": "float", "dimensions": 256,
    });
    let response = embed_as(&app, &token, None, &body).await;
    assert_eq!(response.status(), 200, "{}", json_of(&response));
    let answer = json_of(&response);
    assert_eq!(answer["object"], "list");
    assert_eq!(answer["model"], "titan");
    assert_eq!(
        answer["usage"],
        json!({"prompt_tokens": 16, "total_tokens": 16})
    );
    // The stand-in's vectors are the local embedder's for the same text.
    assert_eq!(
        vectors(&answer),
        [
            LocalEmbedder::vector("first text", 256),
            LocalEmbedder::vector("second text", 256)
        ]
    );
    // (7 + 9) tokens at 1000 per 1000: 16, exactly.
    assert_eq!(header(&response, "tokens-charged"), Some("16"));
    assert_eq!(tokens(&app).await, before - 16);
    let calls = stub.calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].model_id, "amazon.titan-embed-text-v2:0");
    assert_eq!(
        calls[1].body,
        json!({"inputText": "second text", "dimensions": 256, "normalize": true})
    );
    // Without `dimensions`, Titan's default size.
    let default = embed_as(&app, &token, None, &json!({"model": "titan", "input": "x"})).await;
    assert_eq!(vectors(&json_of(&default))[0].len(), 1024);
    assert_eq!(tokens(&app).await, before - 16 - 7);
    // The history names the call, the ledger and usage its model.
    let saved = saved_messages(&app, "alice").await;
    assert!(
        saved.contains(&"embeddings of 2 inputs: first text".to_owned()),
        "{saved:?}"
    );
    let usage = usage::handle(&app, {
        let mut request = chats_request("group_by=model", Some(&token));
        *request.uri_mut() = "/usage/?group_by=model".parse().unwrap();
        request
    })
    .await
    .unwrap();
    let rows = json_of(&usage)["rows"].clone();
    let titan = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["group"] == "titan")
        .unwrap_or_else(|| panic!("no titan row: {rows}"));
    assert_eq!(titan["charged"], 23);
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_paid_call_with_no_time_left_for_the_model_is_refused_before_anything_is_held() {
    let stub = ConverseStub::start(Answer::embedding(4));
    let app = app_on(&stub).await;
    let token = signed_up(&app, "alice").await;
    let with_time_left = |left: Duration| {
        with_auth(
            with_body(
                event("embeddings"),
                &json!({"model": "titan", "input": "on time"}).to_string(),
            ),
            &format!("Bearer {token}"),
        )
        .with_lambda_context(lambda_context_ending_in(left))
    };
    let (account, counts) = (stored_account(&app, "alice").await, item_counts(&app).await);
    // Less than the settle's margin left: a model call could not be paid
    // for in time.
    let late = embeddings::handle(&app, with_time_left(SETTLE_MARGIN / 2))
        .await
        .unwrap();
    assert_eq!(late.status(), 503, "{}", json_of(&late));
    assert_eq!(json_of(&late)["error"]["code"], "model_unavailable");
    assert_eq!(stub.call_count(), 0);
    assert_eq!(stored_account(&app, "alice").await, account);
    assert_eq!(item_counts(&app).await, counts);
    // A minute left: called once and charged its 4 tokens.
    let on_time = embeddings::handle(&app, with_time_left(Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(on_time.status(), 200, "{}", json_of(&on_time));
    assert_eq!(header(&on_time, "tokens-charged"), Some("4"));
    assert_eq!(stub.call_count(), 1);
    assert_eq!(tokens(&app).await, 4000 - 4);
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn base64_vectors_are_the_float_ones_as_little_endian_bytes() {
    let stub = ConverseStub::start(Answer::embedding(3));
    let app = app_on(&stub).await;
    let token = signed_up(&app, "alice").await;
    let ask = |format: &str| json!({"model": "titan", "input": "same", "encoding_format": format});
    let floats = json_of(&embed_as(&app, &token, None, &ask("float")).await);
    let packed = json_of(&embed_as(&app, &token, None, &ask("base64")).await);
    assert!(packed["data"][0]["embedding"].is_string());
    assert_eq!(vectors(&floats), vectors(&packed));
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn too_few_tokens_for_the_hold_calls_no_model_and_changes_nothing() {
    let stub = ConverseStub::start(Answer::embedding(1));
    let app = app_on(&stub).await;
    let token = signed_up(&app, "alice").await;
    let before = tokens(&app).await;
    // Each byte may be a token at 1 a token: the hold is over the balance.
    let long = "x".repeat(usize::try_from(before).unwrap());
    let refused = embed_as(
        &app,
        &token,
        None,
        &json!({"model": "titan", "input": long}),
    )
    .await;
    assert_eq!(refused.status(), 429);
    assert_eq!(json_of(&refused)["error"]["code"], "insufficient_quota");
    assert_eq!(stub.call_count(), 0);
    assert_eq!(tokens(&app).await, before);
    assert!(ledger_entries(&app, "alice", "ledger#hold#")
        .await
        .is_empty());
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_model_that_refuses_releases_the_hold() {
    let stub = ConverseStub::start(Answer::error(429, "ThrottlingException"));
    let app = app_on(&stub).await;
    let token = signed_up(&app, "alice").await;
    let before = tokens(&app).await;
    let response = embed_as(
        &app,
        &token,
        None,
        &json!({"model": "titan", "input": ["a", "b"]}),
    )
    .await;
    assert_eq!(response.status(), 503, "{}", json_of(&response));
    assert_eq!(json_of(&response)["error"]["code"], "model_unavailable");
    assert_eq!(header(&response, "x-should-retry"), Some("true"));
    // The first refusal ends the call: the second input is never sent.
    assert_eq!(stub.call_count(), 1);
    assert_eq!(tokens(&app).await, before);
    assert_eq!(
        ledger_entries(&app, "alice", "ledger#release#").await.len(),
        1
    );
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_failure_after_the_first_input_charges_what_the_model_read() {
    // The first input is answered (5 tokens); the second is refused.
    let stub = ConverseStub::scripted(|n| match n {
        0 => Answer::embedding(5),
        _ => Answer::error(400, "ValidationException"),
    });
    let app = app_on(&stub).await;
    let token = signed_up(&app, "alice").await;
    let before = tokens(&app).await;
    let body = json!({"model": "titan", "input": ["read", "refused", "never sent"]});
    let response = embed_as(&app, &token, None, &body).await;
    assert_eq!(response.status(), 502, "{}", json_of(&response));
    assert_eq!(json_of(&response)["error"]["code"], "model_error");
    // The call the model made is paid for, and nothing more.
    assert_eq!(header(&response, "tokens-charged"), Some("5"));
    assert_eq!(stub.call_count(), 2);
    assert_eq!(tokens(&app).await, before - 5);

    // A model that fails after reading (a reply we cannot read) charges
    // that input's bound: its 4 bytes, its overhead and the fixed one.
    let garbled = ConverseStub::start(Answer::Garbled);
    let app = app_on(&garbled).await;
    let token = signed_up(&app, "alice").await;
    let before = tokens(&app).await;
    let response = embed_as(
        &app,
        &token,
        None,
        &json!({"model": "titan", "input": "abcd"}),
    )
    .await;
    assert_eq!(response.status(), 502, "{}", json_of(&response));
    let bound = chat_core::billing::embeddings::input_bound(&["abcd".to_owned()]) as i64
        + chat_core::pricing::INPUT_OVERHEAD_TOKENS as i64;
    assert_eq!(
        header(&response, "tokens-charged"),
        Some(bound.to_string().as_str())
    );
    assert_eq!(tokens(&app).await, before - bound);
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_retry_under_the_same_key_is_answered_again_and_charged_once() {
    let stub = ConverseStub::start(Answer::embedding(4));
    let app = app_on(&stub).await;
    let token = signed_up(&app, "alice").await;
    let before = tokens(&app).await;
    let body = json!({"model": "titan", "input": ["one", "two"], "encoding_format": "float"});
    let first = embed_as(&app, &token, Some("emb-1"), &body).await;
    assert_eq!(first.status(), 200, "{}", json_of(&first));
    // The same request asking for base64: the same vectors, from the store.
    let mut packed = body.clone();
    packed["encoding_format"] = json!("base64");
    let again = embed_as(&app, &token, Some("emb-1"), &packed).await;
    assert_eq!(again.status(), 200, "{}", json_of(&again));
    assert_eq!(header(&again, "idempotent-replayed"), Some("true"));
    assert_eq!(header(&again, "tokens-charged"), Some("0"));
    assert_eq!(vectors(&json_of(&first)), vectors(&json_of(&again)));
    assert_eq!(json_of(&again)["usage"], json_of(&first)["usage"]);
    // The history shows a line; the vectors are kept for the replay alone.
    let page = history::handle(&app, chats_request("", Some(&token)))
        .await
        .unwrap();
    let chats = json_of(&page)["chats"].clone();
    assert_eq!(chats.as_array().unwrap().len(), 1, "{chats}");
    assert_eq!(chats[0]["response"], "2 embeddings of 1024 numbers");
    assert_eq!(chats[0]["message"], "embeddings of 2 inputs: one");
    assert_eq!(stub.call_count(), 2);
    assert_eq!(tokens(&app).await, before - 8);
    // The key with another request is refused, and calls nothing.
    let other = json!({"model": "titan", "input": "three"});
    let reused = embed_as(&app, &token, Some("emb-1"), &other).await;
    assert_eq!(reused.status(), 422);
    assert_eq!(json_of(&reused)["error"]["code"], "idempotency_key_reused");
    assert_eq!(stub.call_count(), 2);
    assert_eq!(tokens(&app).await, before - 8);
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn simultaneous_calls_are_each_charged_exactly() {
    let stub = ConverseStub::start(Answer::embedding(10));
    let app = app_on(&stub).await;
    let token = signed_up(&app, "alice").await;
    let before = tokens(&app).await;
    let tasks: Vec<_> = (0..6)
        .map(|i| {
            let (app, token) = (app.clone(), token.clone());
            tokio::spawn(async move {
                let body = json!({"model": "titan", "input": format!("text {i}")});
                embed_as(&app, &token, None, &body).await
            })
        })
        .collect();
    let mut charged = 0;
    for task in tasks {
        let response = task.await.unwrap();
        match response.status().as_u16() {
            200 => charged += 10,
            // The per-user cap on open model calls: refused, nothing taken.
            429 => assert_eq!(json_of(&response)["error"]["code"], "rate_limit_exceeded"),
            other => panic!("{other}: {}", json_of(&response)),
        }
    }
    assert!(charged > 0);
    assert_eq!(stub.call_count() as i64 * 10, charged);
    assert_eq!(tokens(&app).await, before - charged);
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn the_local_embedder_is_charged_its_words_in_one_transaction() {
    let stub = ConverseStub::start(Answer::embedding(1));
    let app = app_on(&stub).await;
    let token = signed_up(&app, "alice").await;
    let before = tokens(&app).await;
    // Five words at 500 per 1000: 2.5, rounded up once to 3.
    let body = json!({"model": "local", "input": ["one two three", "four five"]});
    let response = embed_as(&app, &token, None, &body).await;
    assert_eq!(response.status(), 200, "{}", json_of(&response));
    assert_eq!(json_of(&response)["usage"]["prompt_tokens"], 5);
    assert_eq!(header(&response, "tokens-charged"), Some("3"));
    assert_eq!(tokens(&app).await, before - 3);
    assert_eq!(stub.call_count(), 0);
    let again = embed_as(&app, &token, Some("local-1"), &body).await;
    let replay = embed_as(&app, &token, Some("local-1"), &body).await;
    assert_eq!(header(&replay, "idempotent-replayed"), Some("true"));
    assert_eq!(vectors(&json_of(&again)), vectors(&json_of(&replay)));
    assert_eq!(tokens(&app).await, before - 6);
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn each_kind_of_model_is_refused_on_the_other_kinds_routes() {
    let stub = ConverseStub::start(Answer::embedding(1));
    let app = app_on(&stub).await;
    let token = signed_up(&app, "alice").await;
    let before = tokens(&app).await;

    let chat_model = embed_as(
        &app,
        &token,
        None,
        &json!({"model": "dummy", "input": "hi"}),
    )
    .await;
    assert_eq!(chat_model.status(), 400);
    let error = &json_of(&chat_model)["error"];
    assert_eq!(
        (&error["code"], &error["param"]),
        (&json!("wrong_model_kind"), &json!("model"))
    );

    let body = json!({"model": "titan", "messages": [{"role": "user", "content": "hi"}]});
    let completion = complete(&app, &token, body).await;
    assert_eq!(completion.status, 400);
    assert_eq!(completion.json()["error"]["code"], "wrong_model_kind");
    assert!(completion.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("/v1/embeddings"));

    let response = respond(
        &app,
        &token,
        None,
        &json!({"model": "titan", "input": "hi"}),
    )
    .await;
    assert_eq!(response.status, 400);
    assert_eq!(response.json()["error"]["code"], "wrong_model_kind");

    let chat = chat::handle(
        &app,
        with_auth(
            with_body(
                event("chat"),
                &json!({"message": "hi", "model": "titan"}).to_string(),
            ),
            &token,
        ),
    )
    .await
    .unwrap();
    assert_eq!(chat.status(), 400);
    assert_eq!(json_of(&chat)["error"], "wrong_model_kind");
    assert_eq!(json_of(&chat)["kind"], "embedding");

    let unknown = embed_as(&app, &token, None, &json!({"model": "ada", "input": "hi"})).await;
    assert_eq!(unknown.status(), 404);
    assert_eq!(json_of(&unknown)["error"]["code"], "model_not_found");
    assert_eq!(stub.call_count(), 0);
    assert_eq!(tokens(&app).await, before);
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn bad_requests_are_refused_before_any_model_is_called() {
    let stub = ConverseStub::start(Answer::embedding(1));
    let app = app_on(&stub).await;
    let token = signed_up(&app, "alice").await;
    let before = tokens(&app).await;
    let cases = [
        (
            json!({"model": "titan", "input": "hi", "dimensions": 300}),
            "dimensions",
        ),
        (json!({"model": "titan", "input": [[1, 2, 3]]}), "input"),
        (json!({"model": "titan", "input": ""}), "input"),
        (
            json!({"model": "titan", "input": "hi", "colour": "red"}),
            "colour",
        ),
        (
            json!({"model": "titan", "input": "hi", "encoding_format": "int8"}),
            "encoding_format",
        ),
    ];
    for (body, param) in cases {
        let response = embed_as(&app, &token, None, &body).await;
        assert_eq!(response.status(), 400, "{body}");
        let error = &json_of(&response)["error"];
        assert_eq!(error["param"], param, "{body}");
        assert_eq!(error["type"], "invalid_request_error", "{body}");
    }
    let stranger = embeddings::handle(
        &app,
        with_auth(
            with_body(
                event("embeddings"),
                &json!({"model": "titan", "input": "hi"}).to_string(),
            ),
            "Bearer not-a-token",
        ),
    )
    .await
    .unwrap();
    assert_eq!(stranger.status(), 401);
    assert_eq!(json_of(&stranger)["error"]["code"], "invalid_api_key");
    assert_eq!(stub.call_count(), 0);
    assert_eq!(tokens(&app).await, before);
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_key_limited_to_other_models_may_not_embed() {
    let stub = ConverseStub::start(Answer::embedding(1));
    let app = app_on(&stub).await;
    let session = signed_up(&app, "alice").await;
    let body = json!({"name": "service", "models": ["dummy"]}).to_string();
    let created = keys::handle(&app, with_auth(with_body(event("keys"), &body), &session))
        .await
        .unwrap();
    assert_eq!(created.status(), 201, "{}", json_of(&created));
    let key = json_of(&created)["key"].as_str().unwrap().to_owned();
    let before = tokens(&app).await;
    let refused = embed_as(&app, &key, None, &json!({"model": "titan", "input": "hi"})).await;
    assert_eq!(refused.status(), 403);
    assert_eq!(json_of(&refused)["error"]["code"], "model_not_allowed");
    let local = embed_as(&app, &key, None, &json!({"model": "local", "input": "hi"})).await;
    assert_eq!(local.status(), 403);
    assert_eq!(stub.call_count(), 0);
    assert_eq!(tokens(&app).await, before);
    assert_ledger_balances(&app, "alice").await;
}
