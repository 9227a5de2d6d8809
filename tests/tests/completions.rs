//! `POST /v1/chat/completions` through its handler, on DynamoDB Local:
//! OpenAI's shapes, whole and streamed, metered like `/chat/` and saved;
//! every refusal changes nothing; every test ends with the ledger.
//! (The official `openai` SDK drives the same route over HTTP in
//! tests/openai; a paid model's streams are in `completions_model.rs`.)

use std::sync::Arc;

use api_tests::calls::counted_app;
use api_tests::completion::*;
use api_tests::*;
use chat_core::App;
use serde_json::{json, Value};

fn hello() -> Value {
    json!({
        "model": "dummy",
        "messages": [
            {"role": "system", "content": "Answer in one sentence."},
            {"role": "user", "content": "Hello, how are you?"},
        ],
    })
}

async fn user(app: &App, name: &str) -> (Arc<App>, String) {
    let token = signed_up(app, name).await;
    (sharing(app), token)
}

#[tokio::test]
async fn a_completion_answers_in_openais_shape_charges_and_is_saved() {
    let app = fresh_app().await;
    let (shared, token) = user(&app, "alice").await;
    let response = complete(&shared, &token, hello()).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert_eq!(response.header("tokens-charged"), Some("100"));
    let body = response.json();
    assert_eq!(body["object"], "chat.completion");
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(body["model"], "dummy");
    assert_eq!(body["choices"][0]["message"]["role"], "assistant");
    assert_eq!(body["choices"][0]["message"]["content"], "AI response");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    // One token per word of everything sent (4 + 4), one per piece (2).
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 8, "completion_tokens": 2, "total_tokens": 10, "prompt_tokens_details": {"cached_tokens": 0}})
    );
    assert_eq!(stored_tokens(&app, "alice").await, Some(3900));

    let page = history::handle(&app, with_auth(event("history"), &token))
        .await
        .unwrap();
    let chat = &json_of(&page)["chats"][0];
    assert_eq!(chat["message"], "Hello, how are you?");
    assert_eq!(chat["response"], "AI response");
    assert_eq!(chat["cost"], 100);
    let id = body["id"].as_str().unwrap().trim_start_matches("chatcmpl-");
    assert_eq!(chat["chat_id"].as_str().unwrap().replace('-', ""), id);
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_stream_sends_role_pieces_finish_usage_and_done() {
    let app = fresh_app().await;
    let (shared, token) = user(&app, "alice").await;
    let mut body = hello();
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let response = complete(&shared, &token, body).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("text/event-stream"));
    let events = response.events();
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert!(chunks
        .iter()
        .all(|c| c["object"] == "chat.completion.chunk"));
    let ids: std::collections::BTreeSet<_> = chunks.iter().map(|c| c["id"].to_string()).collect();
    assert_eq!(ids.len(), 1, "one id for the whole stream");
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(streamed_text(&chunks), "AI response");
    assert_eq!(chunks.len(), 5, "role, two pieces, finish, usage");
    let finish = &chunks[3];
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    assert!(finish["usage"].is_null());
    let usage = &chunks[4];
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(
        usage["usage"],
        json!({"prompt_tokens": 8, "completion_tokens": 2, "total_tokens": 10, "prompt_tokens_details": {"cached_tokens": 0}})
    );
    assert_eq!(stored_tokens(&app, "alice").await, Some(3900));
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn without_include_usage_a_stream_has_no_usage_field() {
    let app = fresh_app().await;
    let (shared, token) = user(&app, "alice").await;
    let mut body = hello();
    body["stream"] = json!(true);
    let events = complete(&shared, &token, body).await.events();
    assert_eq!(events.len(), 5, "role, two pieces, finish, [DONE]");
    for event in &events[..4] {
        let chunk: Value = serde_json::from_str(event).unwrap();
        assert!(chunk.get("usage").is_none(), "{chunk}");
    }
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn max_tokens_and_stop_cut_the_reply_as_a_model_would() {
    let app = fresh_app().await;
    let (shared, token) = user(&app, "alice").await;
    let mut body = hello();
    body["max_tokens"] = json!(1);
    let answer = complete(&shared, &token, body).await.json();
    assert_eq!(answer["choices"][0]["message"]["content"], "AI");
    assert_eq!(answer["choices"][0]["finish_reason"], "length");
    assert_eq!(answer["usage"]["completion_tokens"], 1);
    let mut body = hello();
    body["stop"] = json!(["spo"]);
    let answer = complete(&shared, &token, body).await.json();
    assert_eq!(answer["choices"][0]["message"]["content"], "AI re");
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
    assert_eq!(stored_tokens(&app, "alice").await, Some(3800));
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn an_empty_dummy_reply_is_charged_as_an_empty_model_reply_is() {
    // A stop sequence at the reply's start cuts all of it: the dummy ran,
    // as a model that answers with usage and no text ran, and the one rule
    // of docs/billing.md charges both.
    let app = fresh_app().await;
    let (shared, token) = user(&app, "alice").await;
    for stream in [false, true] {
        let mut body = hello();
        body["stop"] = json!(["AI"]);
        body["stream"] = json!(stream);
        let answer = complete(&shared, &token, body).await;
        assert_eq!(answer.status, 200);
        if stream {
            assert_eq!(answer.events().last().map(String::as_str), Some("[DONE]"));
        } else {
            let json = answer.json();
            assert_eq!(json["choices"][0]["message"]["content"], "");
            assert_eq!(json["choices"][0]["finish_reason"], "stop");
            assert_eq!(answer.header("tokens-charged"), Some("100"));
        }
    }
    assert_eq!(stored_tokens(&app, "alice").await, Some(3800));
    assert_eq!(stored_chats(&app, "alice").await, 2);
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn refusals_take_openais_shape_and_change_nothing() {
    let app = fresh_app().await;
    let (shared, token) = user(&app, "alice").await;
    let bearer = format!("Bearer {token}");
    let token = bearer.as_str();
    let cases: Vec<(Option<&str>, Value, u16, &str, Value)> = vec![
        (
            Some("Bearer nope"),
            hello(),
            401,
            "invalid_api_key",
            Value::Null,
        ),
        (None, hello(), 401, "invalid_api_key", Value::Null),
        (
            Some(token),
            json!({"model": "dummy"}),
            400,
            "invalid_field",
            json!("messages"),
        ),
        (
            Some(token),
            json!({"model": "dummy", "messages": [{"role": "user", "content": "x"}], "n": 3}),
            400,
            "invalid_field",
            json!("n"),
        ),
        (
            Some(token),
            json!({"model": "dummy", "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function": {"name": "f g"}}]}),
            400,
            "invalid_field",
            json!("tools"),
        ),
        (
            Some(token),
            json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}),
            404,
            "model_not_found",
            json!("model"),
        ),
    ];
    for (auth, body, status, code, param) in cases {
        let response = complete_as(&shared, auth, &body.to_string()).await;
        assert_eq!(response.status, status, "{body}");
        let error = &response.json()["error"];
        assert_eq!(error["code"], code, "{body}");
        assert_eq!(error["param"], param, "{body}");
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert!(error["type"].is_string());
    }
    let response = complete_as(&shared, Some(token), "{not json").await;
    assert_eq!(response.status, 400);
    assert_eq!(response.json()["error"]["code"], "invalid_json");
    let mut get = with_method(
        with_auth(event("completions"), token),
        lambda_http::http::Method::GET,
    );
    get = with_body(get, "");
    let response = Completed::of(completions::handle(shared.clone(), get).await.unwrap()).await;
    assert_eq!(response.status, 405);
    assert_eq!(response.header("allow"), Some("POST"));

    assert_eq!(stored_tokens(&app, "alice").await, Some(4000));
    assert_eq!(stored_chats(&app, "alice").await, 0);
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn an_empty_balance_is_insufficient_quota_which_clients_must_not_retry() {
    let mut app = fresh_app().await;
    app.config.initial_tokens = 250;
    let (shared, token) = user(&app, "alice").await;
    for _ in 0..2 {
        assert_eq!(complete(&shared, &token, hello()).await.status, 200);
    }
    let refused = complete(&shared, &token, hello()).await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.header("x-should-retry"), Some("false"));
    let error = &refused.json()["error"];
    assert_eq!(error["type"], "insufficient_quota");
    assert_eq!(error["code"], "insufficient_quota");
    assert_eq!(stored_tokens(&app, "alice").await, Some(50));
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_simultaneous_streams_for_one_user_admit_exactly_what_the_balance_covers() {
    let app = fresh_app().await;
    let (shared, token) = user(&app, "alice").await;
    let mut body = hello();
    body["stream"] = json!(true);
    let answers = simultaneous_completions(&shared, &token, &body, 50).await;
    let ok = answers.iter().filter(|a| a.status == 200).count();
    let refused = answers.iter().filter(|a| a.status == 429).count();
    assert_eq!((ok, refused), (40, 10));
    for answer in answers.iter().filter(|a| a.status == 200) {
        let events = answer.events();
        assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    }
    assert_eq!(stored_tokens(&app, "alice").await, Some(0));
    assert_eq!(stored_chats(&app, "alice").await, 40);
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_dummy_completion_is_one_round_trip_as_a_chat_is() {
    let (app, calls) = counted_app().await;
    let (shared, token) = user(&app, "alice").await;
    // The shared app's client is the counted one too; its signing key is
    // read at its cold start, as in a Lambda.
    shared.auth.warm_up().await;
    calls.take();
    let mut body = hello();
    body["stream"] = json!(true);
    assert_eq!(complete(&shared, &token, body).await.status, 200);
    assert_eq!(calls.take(), ["TransactWriteItems"]);
    assert_ledger_balances(&app, "alice").await;
}
