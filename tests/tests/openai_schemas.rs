//! `/v1` held to OpenAI's own published OpenAPI document, not only to
//! ours: completions, their chunks (text and tool calls), the model list
//! and errors must each validate against the component schema OpenAI's
//! SDKs and other clients are generated from. The document's relevant part
//! sits beside the project (`../shared/openai-openapi.json`, its source
//! and commit inside) and is read from there, never copied in.
//!
//! OpenAI writes `nullable: true` (OpenAPI 3.0's word) in places, which
//! JSON Schema 2020-12 does not know: it is read as "null allowed", by
//! rewriting each such schema into `anyOf: [<schema>, {"type": "null"}]`
//! before compiling. Unknown keywords (`discriminator`, `x-...`) are
//! annotations to the validator.

use std::sync::Arc;

use api_tests::completion::*;
use api_tests::*;
use chat_core::App;
use devtools::dynamodb_local::repo_root;
use jsonschema::{Draft, Registry, Validator};
use serde_json::{json, Map, Value};

/// Where the document is registered; never fetched.
const URI: &str = "https://openai.invalid/openapi.json";

struct OpenAi {
    registry: Registry<'static>,
}

impl OpenAi {
    fn load() -> Self {
        let path = repo_root().join("../shared/openai-openapi.json");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (OpenAI's OpenAPI document, beside the project)",
                path.display()
            )
        });
        let mut doc: Value = serde_json::from_str(&text).expect("the document is JSON");
        nullable_to_null(&mut doc);
        let registry = Registry::new()
            .draft(Draft::Draft202012)
            .add(URI, doc)
            .and_then(|r| r.prepare())
            .expect("OpenAI's document loads as a schema resource");
        OpenAi { registry }
    }

    fn validator(&self, component: &str) -> Validator {
        let schema = json!({"$ref": format!("{URI}#/components/schemas/{component}")});
        jsonschema::options()
            .with_draft(Draft::Draft202012)
            .with_registry(&self.registry)
            .build(&schema)
            .unwrap_or_else(|e| panic!("{component}: {e}"))
    }

    /// Every way `instance` breaks the component, as text.
    fn breaks(&self, component: &str, instance: &Value) -> Vec<String> {
        self.validator(component)
            .iter_errors(instance)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect()
    }

    fn holds(&self, component: &str, instance: &Value) {
        let errors = self.breaks(component, instance);
        assert!(
            errors.is_empty(),
            "{component} refuses {instance}: {errors:?}"
        );
    }
}

/// `nullable: true` beside a schema: that schema, or null.
fn nullable_to_null(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for child in map.values_mut() {
                nullable_to_null(child);
            }
            if map.remove("nullable") == Some(Value::Bool(true)) {
                let inner = Value::Object(std::mem::take(map));
                let mut wrapped = Map::new();
                wrapped.insert("anyOf".into(), json!([inner, {"type": "null"}]));
                *map = wrapped;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(nullable_to_null),
        _ => {}
    }
}

fn hello(extra: Value) -> Value {
    let mut body = json!({
        "model": "dummy",
        "messages": [{"role": "user", "content": "Hello, how are you?"}],
    });
    for (name, value) in extra.as_object().unwrap() {
        body[name] = value.clone();
    }
    body
}

fn chunks_of(answer: &Completed) -> Vec<Value> {
    let events = answer.events();
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect()
}

#[test]
fn the_check_refuses_what_openai_refuses() {
    let openai = OpenAi::load();
    // What the route sent before: `system_fingerprint: null`, which
    // OpenAI's schema types a string.
    let old = json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "dummy",
        "system_fingerprint": null,
        "choices": [{"index": 0, "logprobs": null, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "hi", "refusal": null}}],
    });
    assert!(!openai
        .breaks("CreateChatCompletionResponse", &old)
        .is_empty());
    let mut fixed = old.clone();
    fixed.as_object_mut().unwrap().remove("system_fingerprint");
    openai.holds("CreateChatCompletionResponse", &fixed);
}

#[tokio::test]
async fn completions_chunks_tool_calls_models_and_errors_validate_against_openais_schemas() {
    let openai = OpenAi::load();
    let app = fresh_app().await;
    let token = signed_up(&app, "alice").await;
    let app: Arc<App> = sharing(&app);
    let tools = json!([{"type": "function", "function": {"name": "get_time"}}]);

    // Whole: text, then a tool call.
    for extra in [json!({}), json!({"tools": tools})] {
        let answer = complete(&app, &token, hello(extra)).await;
        assert_eq!(answer.status, 200);
        openai.holds("CreateChatCompletionResponse", &answer.json());
    }
    // Streamed, with and without the usage chunk, text and tool calls.
    for extra in [
        json!({"stream": true}),
        json!({"stream": true, "stream_options": {"include_usage": true}}),
        json!({"stream": true, "tools": tools}),
    ] {
        let answer = complete(&app, &token, hello(extra)).await;
        for chunk in chunks_of(&answer) {
            openai.holds("CreateChatCompletionStreamResponse", &chunk);
        }
    }
    // A refusal, in OpenAI's error shape.
    let answer = complete(&app, &token, hello(json!({"n": 2}))).await;
    assert_eq!(answer.status, 400);
    openai.holds("ErrorResponse", &answer.json());
    // The model list.
    let listed: Vec<chat_core::openai::ListedModel> = app
        .models
        .all()
        .iter()
        .map(|m| chat_core::openai::ListedModel {
            id: m.id.clone(),
            pricing: m.pricing,
            kind: chat_core::catalog::ModelKind::Chat,
        })
        .collect();
    let request = with_auth(event("models"), &format!("Bearer {token}"));
    let response = models::handle(&app, &listed, request).await.unwrap();
    assert_eq!(response.status(), 200);
    openai.holds("ListModelsResponse", &json_of(&response));
    assert_ledger_balances(&app, "alice").await;
}

/// The component each Responses stream event we send is held to.
fn event_component(kind: &str) -> &'static str {
    match kind {
        "response.created" => "ResponseCreatedEvent",
        "response.in_progress" => "ResponseInProgressEvent",
        "response.output_item.added" => "ResponseOutputItemAddedEvent",
        "response.content_part.added" => "ResponseContentPartAddedEvent",
        "response.output_text.delta" => "ResponseTextDeltaEvent",
        "response.output_text.done" => "ResponseTextDoneEvent",
        "response.content_part.done" => "ResponseContentPartDoneEvent",
        "response.output_item.done" => "ResponseOutputItemDoneEvent",
        "response.function_call_arguments.delta" => "ResponseFunctionCallArgumentsDeltaEvent",
        "response.function_call_arguments.done" => "ResponseFunctionCallArgumentsDoneEvent",
        "response.completed" => "ResponseCompletedEvent",
        "response.incomplete" => "ResponseIncompleteEvent",
        "error" => "ResponseErrorEvent",
        other => panic!("an event we do not send: {other}"),
    }
}

#[tokio::test]
async fn responses_their_stream_events_and_errors_validate_against_openais_schemas() {
    let openai = OpenAi::load();
    let app = fresh_app().await;
    let token = signed_up(&app, "alice").await;
    let app: Arc<App> = sharing(&app);
    let body = json!({"model": "dummy", "instructions": "Be brief.", "input": "Hello"});
    let answer = respond(&app, &token, None, &body).await;
    assert_eq!(answer.status, 200);
    openai.holds("Response", &answer.json());

    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let answer = respond(&app, &token, None, &streamed).await;
    let events = named_events(&String::from_utf8(answer.body.clone()).unwrap());
    assert!(events.len() >= 9);
    for (kind, event) in &events {
        openai.holds(event_component(kind), event);
        openai.holds("ResponseStreamEvent", event);
    }
    // An incomplete response, and the error event a failure midway sends.
    let Value::Object(asked) = body else { panic!() };
    let asked = responses::request::parse(asked, 50).unwrap();
    let reply = responses::wire::Reply::new(uuid::Uuid::now_v7(), "dummy", &asked);
    let cut = chat_core::responder::Finish::Length;
    let mut events = responses::wire::Events::new(&reply);
    let mut closing = events.delta("AI");
    closing.extend(events.closing(cut, chat_core::pricing::Usage::default()));
    let failed = chat_core::openai::OpenAiError::of(&chat_core::ApiError::ModelUnavailable(
        "the model stopped".into(),
    ));
    for bytes in closing.iter().chain([&events.error(&failed.body)]) {
        for (kind, event) in named_events(std::str::from_utf8(bytes).unwrap()) {
            openai.holds(event_component(&kind), &event);
        }
    }
    let items = reply.items("AI", &[]);
    openai.holds(
        "Response",
        &reply.response(Some((&items, cut, Default::default()))),
    );

    // Function tools: the dummy calls one, whole and streamed, and the
    // call goes back with its output.
    let weather = json!({"type": "function", "name": "weather", "strict": true,
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}});
    let asked = json!({"model": "dummy", "input": "Oslo?", "tools": [weather]});
    let answer = respond(&app, &token, None, &asked).await;
    assert_eq!(answer.status, 200);
    let called = answer.json();
    openai.holds("Response", &called);
    assert_eq!(called["output"][0]["type"], "function_call");
    let mut streamed = asked.clone();
    streamed["stream"] = json!(true);
    let answer = respond(&app, &token, None, &streamed).await;
    let events = named_events(&String::from_utf8(answer.body.clone()).unwrap());
    let kinds: Vec<&str> = events.iter().map(|(kind, _)| kind.as_str()).collect();
    assert!(
        kinds.contains(&"response.function_call_arguments.done"),
        "{kinds:?}"
    );
    for (kind, event) in &events {
        openai.holds(event_component(kind), event);
        openai.holds("ResponseStreamEvent", event);
    }
    let call = &called["output"][0];
    let answered = json!({"model": "dummy", "tools": [weather], "input": [
        {"role": "user", "content": "Oslo?"},
        call,
        {"type": "function_call_output", "call_id": call["call_id"], "output": "rain"},
    ]});
    openai.holds("CreateResponse", &answered);
    let answer = respond(&app, &token, None, &answered).await;
    assert_eq!(answer.status, 200, "{:?}", answer.json());
    openai.holds("Response", &answer.json());
    assert_eq!(answer.json()["output"][0]["type"], "message");

    let answer = respond(&app, &token, None, &json!({"model": "dummy", "input": 7})).await;
    assert_eq!(answer.status, 400);
    openai.holds("ErrorResponse", &answer.json());
    assert_ledger_balances(&app, "alice").await;
}

/// `POST /v1/embeddings` answers as OpenAI's `CreateEmbeddingResponse`,
/// and its refusals as `ErrorResponse`. OpenAI's schema types an embedding
/// as numbers only, though its API answers `encoding_format: "base64"` with
/// a string (which its SDKs decode): a base64 answer is held to it once its
/// strings are read back into the numbers they are.
#[tokio::test]
async fn embeddings_and_their_errors_validate_against_openais_schemas() {
    let openai = OpenAi::load();
    let mut app = fresh_app().await;
    let local = chat_model::local_embedding(app.config.pricing);
    app.models = app
        .models
        .clone()
        .with_embedding(local.into_iter().collect());
    let token = signed_up(&app, "alice").await;
    let embed = |body: Value| {
        let request = with_auth(
            with_body(event("embeddings"), &body.to_string()),
            &format!("Bearer {token}"),
        );
        embeddings::handle(&app, request)
    };
    let texts = json!(["Hello", "how are you?"]);
    let floats = embed(json!({"model": "dummy-embedding", "input": texts}))
        .await
        .unwrap();
    assert_eq!(floats.status(), 200);
    let floats = json_of(&floats);
    openai.holds("CreateEmbeddingResponse", &floats);
    for item in floats["data"].as_array().unwrap() {
        openai.holds("Embedding", item);
    }
    let packed =
        embed(json!({"model": "dummy-embedding", "input": texts, "encoding_format": "base64"}))
            .await
            .unwrap();
    let mut packed = json_of(&packed);
    for item in packed["data"].as_array_mut().unwrap() {
        let text = item["embedding"].as_str().expect("base64 is a string");
        let numbers = chat_core::embedder::from_base64(text).expect("little-endian floats");
        item["embedding"] = json!(numbers);
    }
    openai.holds("CreateEmbeddingResponse", &packed);
    assert_eq!(packed["data"], floats["data"]);
    for refused in [
        json!({"model": "dummy", "input": "hi"}),
        json!({"model": "dummy-embedding", "input": [[1, 2]]}),
        json!({"model": "ada", "input": "hi"}),
    ] {
        let response = embed(refused.clone()).await.unwrap();
        assert!(response.status().is_client_error(), "{refused}");
        openai.holds("ErrorResponse", &json_of(&response));
    }
    assert_ledger_balances(&app, "alice").await;
}
