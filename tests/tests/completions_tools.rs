//! Tool calling on `/v1/chat/completions` with a paid model: the Bedrock
//! responder against the ConverseStream stand-in, which calls tools as
//! Bedrock does. The tools reach Converse as its `toolConfig`, a round
//! trip as `toolUse` and `toolResult` blocks; calls come back whole or as
//! OpenAI's indexed deltas with `finish_reason: "tool_calls"`, charged at
//! the model's usage, replayed under their key without a second charge.
//! Every test ends with the ledger.

use std::sync::Arc;

use api_tests::completion::*;
use api_tests::converse_stub::{Answer, ConverseStub, Streamed};
use api_tests::*;
use chat_core::pricing::{Pricing, Usage, UsagePrices};
use chat_core::{App, Config};
use chat_model::ModelConfig;
use devtools::dynamodb_local::{client, fresh_tables, quiet_app};
use serde_json::{json, Value};

const MODEL_ID: &str = "test-model";
const PRICES: UsagePrices = UsagePrices::plain(3, 15);

async fn app_with(stub: &ConverseStub) -> Arc<App> {
    let client = client();
    let mut config = Config::with_tables(fresh_tables(&client).await);
    config.pricing = Pricing::Usage(PRICES);
    config.initial_tokens = 4000;
    let mut app = quiet_app(config, client);
    let mut model = ModelConfig::new(MODEL_ID);
    model.max_attempts = 1;
    app.models =
        chat_core::served::Models::only(Arc::new(stub.responder(model)), app.config.pricing);
    Arc::new(app)
}

fn weather_tool() -> Value {
    json!({"type": "function", "function": {
        "name": "weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }})
}

/// The model's call: a sentence, then `weather` with its arguments in two
/// pieces; 200 tokens read (the tools' definitions with them), 30 written.
fn calling_model() -> ConverseStub {
    ConverseStub::start(Answer::Stream(
        Streamed::pieces(&["Let me check."])
            .tool_use("tooluse_1", "weather", &["{\"city\":", "\"Oslo\"}"])
            .usage(200, 30),
    ))
}

fn asking(stream: bool) -> Value {
    json!({
        "model": MODEL_ID,
        "stream": stream,
        "max_tokens": 100,
        "tools": [weather_tool()],
        "messages": [{"role": "user", "content": "Weather in Oslo?"}],
    })
}

fn cost_of(input_tokens: u64, output_tokens: u64) -> i64 {
    PRICES
        .cost(Usage {
            input_tokens,
            output_tokens,
            ..Default::default()
        })
        .get() as i64
}

#[tokio::test]
async fn a_streamed_tool_call_comes_as_indexed_deltas_and_is_charged_its_usage() {
    let stub = calling_model();
    let app = app_with(&stub).await;
    let token = signed_up(&app, "alice").await;
    let answer = complete(&app, &token, asking(true)).await;
    assert_eq!(answer.status, 200);
    let events = answer.events();
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert_eq!(streamed_text(&chunks), "Let me check.");
    let calls: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0))
        .collect();
    // The start names the call; the arguments follow, as the model wrote
    // them, under the same index.
    assert_eq!(calls[0]["index"], 0);
    assert_eq!(calls[0]["id"], "tooluse_1");
    assert_eq!(calls[0]["type"], "function");
    assert_eq!(calls[0]["function"]["name"], "weather");
    let arguments: String = calls
        .iter()
        .map(|c| c["function"]["arguments"].as_str().unwrap())
        .collect();
    assert_eq!(arguments, "{\"city\":\"Oslo\"}");
    assert!(calls.iter().all(|c| c["index"] == 0));
    let finish = chunks.last().unwrap();
    assert_eq!(finish["choices"][0]["finish_reason"], "tool_calls");
    // The tools reached Converse as its tool configuration.
    let sent = &stub.calls()[0].body;
    let spec = &sent["toolConfig"]["tools"][0]["toolSpec"];
    assert_eq!(spec["name"], "weather");
    assert_eq!(spec["description"], "The weather in a city");
    assert_eq!(spec["inputSchema"]["json"]["required"][0], "city");
    assert!(sent["toolConfig"]["toolChoice"].get("auto").is_some());
    assert_eq!(
        stored_tokens(&app, "alice").await,
        Some(4000 - cost_of(200, 30))
    );
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_whole_tool_call_has_null_content_only_without_text_and_replays_without_a_second_charge()
{
    let stub = ConverseStub::start(Answer::Stream(
        Streamed::pieces(&[])
            .tool_use("tooluse_7", "weather", &["{\"city\":\"Oslo\"}"])
            .usage(150, 20),
    ));
    let app = app_with(&stub).await;
    let token = signed_up(&app, "alice").await;
    let mut body = asking(false);
    body["tool_choice"] = json!({"type": "function", "function": {"name": "weather"}});
    let first = complete_keyed(&app, &token, "tools-1", &body).await;
    assert_eq!(first.status, 200);
    let whole = first.json();
    let message = &whole["choices"][0]["message"];
    assert!(message["content"].is_null());
    assert_eq!(message["tool_calls"][0]["id"], "tooluse_7");
    assert_eq!(
        message["tool_calls"][0]["function"]["arguments"],
        "{\"city\":\"Oslo\"}"
    );
    assert_eq!(whole["choices"][0]["finish_reason"], "tool_calls");
    let sent = &stub.calls()[0].body;
    assert_eq!(sent["toolConfig"]["toolChoice"]["tool"]["name"], "weather");
    // The same request again under its key: the same calls, no charge.
    let again = complete_keyed(&app, &token, "tools-1", &body).await;
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.json()["choices"], whole["choices"]);
    assert_eq!(stub.call_count(), 1);
    assert_eq!(
        stored_tokens(&app, "alice").await,
        Some(4000 - cost_of(150, 20))
    );
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_round_trip_sends_tool_use_and_tool_result_blocks_and_the_answer_is_saved() {
    let stub = ConverseStub::start(Answer::used("Sunny in Oslo.", 300, 5));
    let app = app_with(&stub).await;
    let token = signed_up(&app, "alice").await;
    let body = json!({
        "model": MODEL_ID,
        "tools": [weather_tool()],
        "messages": [
            {"role": "user", "content": "Weather in Oslo?"},
            {"role": "assistant", "content": null, "tool_calls": [{
                "id": "tooluse_1", "type": "function",
                "function": {"name": "weather", "arguments": "{\"city\":\"Oslo\"}"},
            }]},
            {"role": "tool", "tool_call_id": "tooluse_1", "content": "sunny, 21 C"},
        ],
    });
    let answer = complete(&app, &token, body).await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.json()["choices"][0]["message"]["content"],
        "Sunny in Oslo."
    );
    let sent = &stub.calls()[0].body;
    let messages = sent["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3);
    let tool_use = &messages[1]["content"][0]["toolUse"];
    assert_eq!(tool_use["toolUseId"], "tooluse_1");
    assert_eq!(tool_use["input"]["city"], "Oslo");
    assert_eq!(messages[2]["role"], "user");
    let result = &messages[2]["content"][0]["toolResult"];
    assert_eq!(result["toolUseId"], "tooluse_1");
    assert_eq!(result["content"][0]["text"], "sunny, 21 C");
    assert_eq!(
        stored_tokens(&app, "alice").await,
        Some(4000 - cost_of(300, 5))
    );
    let page = history::handle(&app, with_auth(event("history"), &token))
        .await
        .unwrap();
    let chat = &json_of(&page)["chats"][0];
    assert_eq!(chat["message"], "sunny, 21 C");
    assert_eq!(chat["response"], "Sunny in Oslo.");
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn bad_tools_are_a_400_that_names_them_and_change_nothing() {
    let stub = calling_model();
    let app = app_with(&stub).await;
    let token = signed_up(&app, "alice").await;
    let mut body = asking(false);
    body["tools"] = json!([{"type": "function", "function": {"name": "has space"}}]);
    let answer = complete(&app, &token, body).await;
    assert_eq!(answer.status, 400);
    let error = answer.json();
    assert_eq!(error["error"]["param"], "tools");
    assert_eq!(error["error"]["type"], "invalid_request_error");
    assert_eq!(stub.call_count(), 0);
    assert_eq!(stored_tokens(&app, "alice").await, Some(4000));
    assert_ledger_balances(&app, "alice").await;
}
