//! `POST /v1/responses` through its handler, on DynamoDB Local: OpenAI's
//! `response` object and its stream's events, metered through the same
//! billing as completions (the dummy's charge; a paid model's hold, stream
//! and settle), saved, replayed for its idempotency key without a second
//! charge; every refusal changes nothing; every test ends with the ledger.
//! (The official `openai` SDK drives the same route in tests/openai.)

use std::sync::Arc;
use std::time::Duration;

use api_tests::completion::*;
use api_tests::converse_stub::{Answer, ConverseStub, Gate, Streamed};
use api_tests::*;
use chat_core::pricing::{Pricing, UsagePrices};
use chat_core::{App, Config};
use chat_model::ModelConfig;
use devtools::dynamodb_local::{client, fresh_tables, quiet_app};
use serde_json::{json, Value};

const MODEL_ID: &str = "test-model";

fn hello() -> Value {
    json!({"model": "dummy", "instructions": "Answer in one sentence.", "input": "Hello, how are you?"})
}

/// The kinds of a stream's events, in order, checking their numbers run
/// from 0 without a gap.
fn kinds(events: &[(String, Value)]) -> Vec<&str> {
    for (i, (name, data)) in events.iter().enumerate() {
        assert_eq!(data["type"], name.as_str());
        assert_eq!(data["sequence_number"], i, "{name}");
    }
    events.iter().map(|(name, _)| name.as_str()).collect()
}

#[tokio::test]
async fn a_response_answers_in_openais_shape_charges_and_is_saved() {
    let app = fresh_app().await;
    let token = signed_up(&app, "alice").await;
    let shared = sharing(&app);
    let answer = respond(&shared, &token, None, &hello()).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    assert_eq!(answer.header("tokens-charged"), Some("100"));
    let body = answer.json();
    assert_eq!(body["object"], "response");
    assert_eq!(body["status"], "completed");
    assert_eq!(body["model"], "dummy");
    assert_eq!(body["instructions"], "Answer in one sentence.");
    let message = &body["output"][0];
    assert_eq!(message["type"], "message");
    assert_eq!(message["role"], "assistant");
    assert_eq!(message["content"][0]["type"], "output_text");
    assert_eq!(message["content"][0]["text"], "AI response");
    // One token per word of everything sent (4 + 4), one per piece (2).
    assert_eq!(body["usage"]["input_tokens"], 8);
    assert_eq!(body["usage"]["output_tokens"], 2);
    assert_eq!(body["usage"]["total_tokens"], 10);
    assert_eq!(stored_tokens(&app, "alice").await, Some(3900));
    let page = history::handle(&app, with_auth(event("history"), &token))
        .await
        .unwrap();
    let chat = &json_of(&page)["chats"][0];
    assert_eq!(chat["message"], "Hello, how are you?");
    assert_eq!(chat["response"], "AI response");
    let id = body["id"].as_str().unwrap().trim_start_matches("resp_");
    assert_eq!(chat["chat_id"].as_str().unwrap().replace('-', ""), id);
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_stream_sends_openais_events_in_order_ending_with_the_whole_response() {
    let app = fresh_app().await;
    let token = signed_up(&app, "alice").await;
    let shared = sharing(&app);
    let mut body = hello();
    body["stream"] = json!(true);
    let answer = respond(&shared, &token, None, &body).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("content-type"), Some("text/event-stream"));
    let events = named_events(&String::from_utf8(answer.body.clone()).unwrap());
    assert_eq!(
        kinds(&events),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    assert_eq!(events[0].1["response"]["status"], "in_progress");
    let deltas: String = events
        .iter()
        .filter_map(|(_, e)| e["delta"].as_str())
        .collect();
    assert_eq!(deltas, "AI response");
    assert_eq!(events[6].1["text"], "AI response");
    let done = &events[9].1["response"];
    assert_eq!(done["status"], "completed");
    assert_eq!(done["output"][0]["content"][0]["text"], "AI response");
    assert_eq!(done["usage"]["output_tokens"], 2);
    assert_eq!(stored_tokens(&app, "alice").await, Some(3900));
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_retry_under_the_same_key_is_the_same_response_and_charged_once() {
    let app = fresh_app().await;
    let token = signed_up(&app, "alice").await;
    let shared = sharing(&app);
    let first = respond(&shared, &token, Some("k1"), &hello()).await;
    assert_eq!(first.status, 200);
    // The retry asks for the same reply streamed: the same request.
    let mut streamed = hello();
    streamed["stream"] = json!(true);
    let again = respond(&shared, &token, Some("k1"), &streamed).await;
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    let events = named_events(&String::from_utf8(again.body.clone()).unwrap());
    let done = &events.last().unwrap().1["response"];
    assert_eq!(done["id"], first.json()["id"]);
    assert_eq!(done["output"][0]["content"][0]["text"], "AI response");
    let whole = respond(&shared, &token, Some("k1"), &hello()).await;
    assert_eq!(whole.json()["id"], first.json()["id"]);
    assert_eq!(whole.header("tokens-charged"), Some("0"));
    // Another body under the key is refused, not answered.
    let mut other = hello();
    other["input"] = json!("Something else");
    let refused = respond(&shared, &token, Some("k1"), &other).await;
    assert_eq!(refused.status, 422);
    assert_eq!(stored_tokens(&app, "alice").await, Some(3900));
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn what_needs_server_state_or_tools_is_refused_by_name_and_changes_nothing() {
    let app = fresh_app().await;
    let token = signed_up(&app, "alice").await;
    let shared = sharing(&app);
    for (field, value) in [
        ("previous_response_id", json!("resp_123")),
        ("store", json!(true)),
        ("background", json!(true)),
        ("tools", json!([{"type": "web_search"}])),
        (
            "tools",
            json!([{"type": "function", "name": "no spaces", "parameters": {}}]),
        ),
        ("tool_choice", json!("required")),
        ("conversation", json!("conv_1")),
        ("reasoning", json!({"effort": "high"})),
        ("max_output_tokens", json!(0)),
        (
            "input",
            json!([{"type": "function_call_output", "call_id": "c", "output": "1"}]),
        ),
        ("input", json!(7)),
        ("wat", json!(1)),
    ] {
        let mut body = hello();
        body[field] = value;
        let answer = respond(&shared, &token, None, &body).await;
        assert_eq!(answer.status, 400, "{field}");
        let error = &answer.json()["error"];
        assert_eq!(error["param"], field);
        assert_eq!(error["code"], "invalid_field");
        assert_eq!(error["type"], "invalid_request_error");
    }
    let mut unknown = hello();
    unknown["model"] = json!("no-such-model");
    let answer = respond(&shared, &token, None, &unknown).await;
    assert_eq!(answer.status, 404);
    assert_eq!(answer.json()["error"]["param"], "model");
    assert_eq!(stored_tokens(&app, "alice").await, Some(4000));
    assert_ledger_balances(&app, "alice").await;
}

/// A paid model streaming from the ConverseStream stand-in.
async fn paid_app(stub: &ConverseStub) -> Arc<App> {
    let client = client();
    let mut config = Config::with_tables(fresh_tables(&client).await);
    config.pricing = Pricing::Usage(UsagePrices::plain(3, 15));
    let mut app = quiet_app(config, client);
    let mut model = ModelConfig::new(MODEL_ID);
    model.max_attempts = 1;
    app.models =
        chat_core::served::Models::only(Arc::new(stub.responder(model)), app.config.pricing);
    Arc::new(app)
}

#[tokio::test]
async fn a_paid_stream_is_settled_at_the_models_usage_before_response_completed() {
    let stub = ConverseStub::start(Answer::Stream(
        Streamed::pieces(&["Fine, ", "thanks!"]).usage(100, 500),
    ));
    let app = paid_app(&stub).await;
    let token = signed_up(&app, "alice").await;
    let body = json!({"model": MODEL_ID, "stream": true, "max_output_tokens": 1000,
    "instructions": "Be brief.", "input": [
        {"role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
        {"role": "assistant", "content": [{"type": "output_text", "text": "Hello!"}]},
        {"role": "user", "content": "How are you?"},
    ]});
    let answer = respond(&app, &token, None, &body).await;
    assert_eq!(answer.status, 200);
    let events = named_events(&String::from_utf8(answer.body.clone()).unwrap());
    let kinds = kinds(&events);
    assert_eq!(kinds.last(), Some(&"response.completed"));
    let deltas: String = events
        .iter()
        .filter_map(|(_, e)| e["delta"].as_str())
        .collect();
    assert_eq!(deltas, "Fine, thanks!");
    let done = &events.last().unwrap().1["response"];
    assert_eq!(done["usage"]["input_tokens"], 100);
    assert_eq!(done["usage"]["output_tokens"], 500);
    assert_eq!(done["max_output_tokens"], 1000);
    let sent = &stub.calls()[0].body;
    assert_eq!(sent["system"][0]["text"], "Be brief.");
    assert_eq!(sent["messages"].as_array().unwrap().len(), 3);
    assert_eq!(sent["inferenceConfig"]["maxTokens"], 1000);
    // 100 x 3 + 500 x 15 = 7800 thousandths: 8 tokens.
    assert_eq!(stored_tokens(&app, "alice").await, Some(4000 - 8));
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_reply_cut_at_max_output_tokens_is_incomplete_and_charged() {
    let stub = ConverseStub::start(Answer::Stream(
        Streamed::pieces(&["Once upon"])
            .usage(10, 2)
            .stop_reason("max_tokens"),
    ));
    let app = paid_app(&stub).await;
    let token = signed_up(&app, "alice").await;
    let body = json!({"model": MODEL_ID, "max_output_tokens": 2, "input": "Tell a story"});
    let answer = respond(&app, &token, None, &body).await;
    assert_eq!(answer.status, 200);
    let body = answer.json();
    assert_eq!(body["status"], "incomplete");
    assert_eq!(body["incomplete_details"]["reason"], "max_output_tokens");
    assert_eq!(body["output"][0]["content"][0]["text"], "Once upon");
    // 10 x 3 + 2 x 15 = 60 thousandths: 1 token.
    assert_eq!(answer.header("tokens-charged"), Some("1"));
    assert_eq!(stored_tokens(&app, "alice").await, Some(3999));
    assert_ledger_balances(&app, "alice").await;
}

/// A paid model that calls a function, streamed: the text's message is
/// done before the call is added, the call's arguments come in pieces, the
/// response ends with both items, and the charge is the model's usage.
/// The call and its output then go back as input.
#[tokio::test]
async fn a_paid_function_call_streams_as_its_own_item_and_goes_back_as_input() {
    let stub = ConverseStub::scripted(|call| match call {
        0 => Answer::Stream(
            Streamed::pieces(&["Let me check."])
                .tool_use("tooluse_1", "weather", &["{\"city\":", "\"Oslo\"}"])
                .stop_reason("tool_use")
                .usage(200, 30),
        ),
        _ => Answer::used("Rain in Oslo.", 300, 5),
    });
    let app = paid_app(&stub).await;
    let token = signed_up(&app, "alice").await;
    let weather = json!({"type": "function", "name": "weather", "strict": true,
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}});
    let body = json!({"model": MODEL_ID, "stream": true, "tools": [weather],
        "input": "Weather in Oslo?"});
    let answer = respond(&app, &token, None, &body).await;
    assert_eq!(answer.status, 200);
    let events = named_events(&String::from_utf8(answer.body.clone()).unwrap());
    let kinds = kinds(&events);
    assert_eq!(
        kinds,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    let done = &events.last().unwrap().1["response"];
    let call = &done["output"][1];
    assert_eq!(call["type"], "function_call");
    assert_eq!(call["call_id"], "tooluse_1");
    assert_eq!(call["arguments"], "{\"city\":\"Oslo\"}");
    assert_eq!(done["output"][0]["content"][0]["text"], "Let me check.");
    assert_eq!(done["tools"][0]["name"], "weather");
    let sent = &stub.calls()[0].body;
    assert_eq!(
        sent["toolConfig"]["tools"][0]["toolSpec"]["name"],
        "weather"
    );
    // 200 x 3 + 30 x 15 = 1050 thousandths: 2 tokens.
    assert_eq!(stored_tokens(&app, "alice").await, Some(4000 - 2));

    let answered = json!({"model": MODEL_ID, "tools": [weather], "input": [
        {"role": "user", "content": "Weather in Oslo?"},
        done["output"][0],
        call,
        {"type": "function_call_output", "call_id": "tooluse_1", "output": "rain, 9 C"},
    ]});
    let answer = respond(&app, &token, None, &answered).await;
    assert_eq!(answer.status, 200, "{:?}", answer.json());
    assert_eq!(
        answer.json()["output"][0]["content"][0]["text"],
        "Rain in Oslo."
    );
    let sent = &stub.calls()[1].body;
    let turns = sent["messages"].as_array().unwrap();
    assert_eq!(turns.len(), 3);
    assert_eq!(turns[1]["content"][1]["toolUse"]["toolUseId"], "tooluse_1");
    assert_eq!(turns[1]["content"][1]["toolUse"]["input"]["city"], "Oslo");
    assert_eq!(
        turns[2]["content"][0]["toolResult"]["toolUseId"],
        "tooluse_1"
    );
    // 300 x 3 + 5 x 15 = 975 thousandths: 1 token.
    assert_eq!(stored_tokens(&app, "alice").await, Some(4000 - 3));
    assert_ledger_balances(&app, "alice").await;
}

/// As the SDK retries when an answer is lost: ten copies of one keyed
/// request at once while the model is still writing the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_keyed_responses_at_once_call_the_model_once_and_charge_once() {
    let gate = Gate::default();
    let stub = ConverseStub::start(Answer::gated(&gate, Answer::used("only once", 100, 20)));
    let app = paid_app(&stub).await;
    let token = signed_up(&app, "alice").await;
    let body = json!({"model": MODEL_ID, "input": "same question"});
    let mut running = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let (app, token, body) = (app.clone(), token.clone(), body.clone());
        running.spawn(async move { respond(&app, &token, Some("one-key"), &body).await });
    }
    // One holds its call at the gate; the nine others are told to wait.
    let mut answers = Vec::new();
    let waited = tokio::time::timeout(Duration::from_secs(120), async {
        while answers.len() < 9 {
            answers.push(running.join_next().await.unwrap().unwrap());
        }
    })
    .await;
    gate.open();
    while let Some(answer) = running.join_next().await {
        answers.push(answer.unwrap());
    }
    assert!(waited.is_ok(), "9 answers did not come while the model ran");
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [[409; 9].as_slice(), &[200]].concat());
    // 100 x 3 + 20 x 15 = 600 thousandths: 1 token.
    assert_eq!(answers[9].header("tokens-charged"), Some("1"));
    assert_eq!(stub.call_count(), 1);
    let replay = respond(&app, &token, Some("one-key"), &body).await;
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(
        replay.json()["output"][0]["content"][0]["text"],
        "only once"
    );
    assert_eq!(
        (stub.call_count(), stored_chats(&app, "alice").await),
        (1, 1)
    );
    assert_eq!(stored_tokens(&app, "alice").await, Some(3999));
    assert_ledger_balances(&app, "alice").await;
}
