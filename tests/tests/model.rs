//! The chat function with a real model behind it: the production Bedrock
//! responder talking to a local stand-in of the Converse endpoint, and
//! DynamoDB Local. A reply is charged once and saved; a failing, slow or
//! throttled model charges and saves nothing; and nobody reaches the model
//! without a live session and the tokens to pay for it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use api_tests::calls::counted_app;
use api_tests::converse_stub::{Answer, ConverseStub, Gate};
use api_tests::*;
use aws_sdk_dynamodb::types::AttributeValue;
use chat_core::domain::{AuthToken, SigningKey, Username};
use chat_core::App;
use chat_model::ModelConfig;
use devtools::dynamodb_local::fresh_app;

const MODEL_ID: &str = "anthropic.claude-3-haiku-20240307-v1:0";

/// The production settings, but one attempt, so call counts are exact.
fn one_attempt() -> ModelConfig {
    let mut model = ModelConfig::new(MODEL_ID);
    model.max_attempts = 1;
    model
}

async fn app_with(stub: &ConverseStub, model: ModelConfig) -> App {
    let mut app = fresh_app().await;
    app.models =
        chat_core::served::Models::only(Arc::new(stub.responder(model)), app.config.pricing);
    app
}

/// The replies saved for `username`, oldest first.
async fn saved_responses(app: &App, username: &str) -> Vec<String> {
    let page = app
        .store
        .client()
        .query()
        .table_name(&app.store.tables().chats)
        .key_condition_expression("username = :u")
        .expression_attribute_values(":u", AttributeValue::S(username.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    page.items()
        .iter()
        // Idempotency markers carry a reply too, but no message; holds a
        // message, but no reply.
        .filter(|item| item.contains_key("message") && item.contains_key("response"))
        .map(|item| item["response"].as_s().unwrap().clone())
        .collect()
}

#[tokio::test]
async fn a_model_reply_is_answered_saved_and_charged_once() {
    let stub = ConverseStub::start(Answer::text("Bonjour ! Ça va bien."));
    let app = app_with(&stub, one_attempt()).await;
    let token = signed_up(&app, "alice").await;

    let response = chat_as(&app, &token, "Hello, how are you?").await;
    assert_eq!(response.status(), 200);
    let body = json_of(&response);
    assert_eq!(body["response"], "Bonjour ! Ça va bien.");
    assert_eq!(body["message"], "Hello, how are you?");
    assert_eq!(body["user"], "alice");

    assert_eq!(stored_tokens(&app, "alice").await, Some(3900));
    assert_eq!(
        saved_responses(&app, "alice").await,
        ["Bonjour ! Ça va bien."]
    );
    assert_eq!(saved_messages(&app, "alice").await, ["Hello, how are you?"]);
    assert_eq!(
        json_of(&balance_as(&app, &token).await),
        serde_json::json!({"tokens": 3900})
    );

    let calls = stub.calls();
    assert_eq!(calls.len(), 1, "one model call per chat");
    assert_eq!(calls[0].model_id, MODEL_ID);
    assert_eq!(calls[0].prompt(), Some("Hello, how are you?"));
    assert_eq!(calls[0].body["messages"][0]["role"], "user");
    assert_eq!(
        calls[0].body["messages"].as_array().map(Vec::len),
        Some(1),
        "the message alone, no history"
    );
    assert_eq!(calls[0].body["inferenceConfig"]["maxTokens"], 1024);
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_reply_with_usage_and_no_text_is_charged_its_usage_and_saved() {
    use api_tests::converse_stub::Streamed;
    use chat_core::pricing::{Pricing, UsagePrices};
    // Filtered, or spent on reasoning: the model ran and says what it used.
    let stub = ConverseStub::start(Answer::Stream(
        Streamed::pieces(&[])
            .usage(1000, 200)
            .stop_reason("content_filtered"),
    ));
    let mut app = app_with(&stub, one_attempt()).await;
    app.config.pricing = Pricing::Usage(UsagePrices::plain(3, 15));
    app.models = chat_core::served::Models::only(
        Arc::new(stub.responder(one_attempt())),
        app.config.pricing,
    );
    let token = signed_up(&app, "alice").await;
    let response = chat_as(&app, &token, "Hello").await;
    assert_eq!(response.status(), 200);
    assert_eq!(json_of(&response)["response"], "");
    assert_eq!(response.headers()["finish-reason"], "content_filter");
    // 1000 x 3 + 200 x 15 = 6000 thousandths.
    assert_eq!(response.headers()["tokens-charged"], "6");
    assert_eq!(stored_tokens(&app, "alice").await, Some(3994));
    assert_eq!(saved_responses(&app, "alice").await, [""]);
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_model_that_answers_with_an_error_is_502_and_charges_nothing() {
    let mut app = fresh_app().await;
    let token = signed_up(&app, "alice").await;
    // With the production retry policy: a 5xx is tried twice, a 4xx once.
    let cases = [
        ("bare 500", Answer::Status(500), 2),
        (
            "InternalServerException",
            Answer::error(500, "InternalServerException"),
            2,
        ),
        (
            "ModelErrorException",
            Answer::error(424, "ModelErrorException"),
            1,
        ),
        (
            "ValidationException",
            Answer::error(400, "ValidationException"),
            1,
        ),
        (
            "AccessDeniedException",
            Answer::error(403, "AccessDeniedException"),
            1,
        ),
    ];
    for (name, answer, attempts) in cases {
        let stub = ConverseStub::start(answer);
        app.models = chat_core::served::Models::only(
            Arc::new(stub.responder(ModelConfig::new(MODEL_ID))),
            app.config.pricing,
        );
        let response = chat_as(&app, &token, "Hello").await;
        assert_eq!(response.status(), 502, "{name}");
        assert!(response.headers().get("retry-after").is_none(), "{name}");
        let body = json_of(&response);
        assert_eq!(body["error"], "model_error", "{name}");
        assert!(
            !body.to_string().contains("stub"),
            "{name}: the cause stays in the log: {body}"
        );
        assert_eq!(stub.call_count(), attempts, "{name}");
        assert_eq!(stored_tokens(&app, "alice").await, Some(4000), "{name}");
        assert_eq!(stored_chats(&app, "alice").await, 0, "{name}");
    }
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_model_slower_than_its_timeout_is_503_with_retry_after_and_charges_nothing() {
    let stub = ConverseStub::start(Answer::after(
        Duration::from_secs(8),
        Answer::text("too late"),
    ));
    let mut model = ModelConfig::new(MODEL_ID);
    model.timeout = Duration::from_secs(1);
    let app = app_with(&stub, model).await;
    let token = signed_up(&app, "alice").await;

    let started = Instant::now();
    let response = chat_as(&app, &token, "Hello").await;
    let took = started.elapsed();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "5");
    assert_eq!(json_of(&response)["error"], "model_unavailable");
    // Far below the model's 8 s, with room for the reads around the call
    // on a busy machine.
    assert!(
        took < Duration::from_secs(5),
        "the timeout covers retries too: {took:?}"
    );
    assert_eq!(stub.call_count(), 1, "a timed-out call is not sent again");
    assert_eq!(stored_tokens(&app, "alice").await, Some(4000));
    assert_eq!(stored_chats(&app, "alice").await, 0);
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_throttled_or_unavailable_model_is_503_and_charges_nothing() {
    let mut app = fresh_app().await;
    let token = signed_up(&app, "alice").await;
    let cases = [
        ("throttled", Answer::error(429, "ThrottlingException")),
        (
            "unavailable",
            Answer::error(503, "ServiceUnavailableException"),
        ),
        ("not ready", Answer::error(429, "ModelNotReadyException")),
        ("model timeout", Answer::error(408, "ModelTimeoutException")),
        ("bare 503", Answer::Status(503)),
    ];
    for (name, answer) in cases {
        let stub = ConverseStub::start(answer);
        app.models = chat_core::served::Models::only(
            Arc::new(stub.responder(one_attempt())),
            app.config.pricing,
        );
        let response = chat_as(&app, &token, "Hello").await;
        assert_eq!(response.status(), 503, "{name}");
        assert_eq!(response.headers()["retry-after"], "5", "{name}");
        assert_eq!(json_of(&response)["error"], "model_unavailable", "{name}");
        assert_eq!(stub.call_count(), 1, "{name}");
        assert_eq!(stored_tokens(&app, "alice").await, Some(4000), "{name}");
        assert_eq!(stored_chats(&app, "alice").await, 0, "{name}");
    }
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_throttled_model_is_tried_once_more_and_a_recovered_one_is_charged_once() {
    let stub = ConverseStub::scripted(|n| match n {
        0 => Answer::error(429, "ThrottlingException"),
        _ => Answer::text("second time lucky"),
    });
    let app = app_with(&stub, ModelConfig::new(MODEL_ID)).await;
    let token = signed_up(&app, "alice").await;
    let response = chat_as(&app, &token, "Hello").await;
    assert_eq!(response.status(), 200);
    assert_eq!(json_of(&response)["response"], "second time lucky");
    assert_eq!(stub.call_count(), 2);
    assert_eq!(stored_tokens(&app, "alice").await, Some(3900));
    assert_eq!(stored_chats(&app, "alice").await, 1);
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn nobody_reaches_the_model_without_a_live_session_and_the_tokens_to_pay() {
    let stub = ConverseStub::start(Answer::text("never sent"));
    let mut app = app_with(&stub, one_attempt()).await;
    let token = signed_up(&app, "alice").await;

    // Well-formed tokens with no session behind them.
    let (_, secret) = token.split_once('.').unwrap();
    let unknown_user = format!("Ym9i.{secret}");
    // alice's name with a secret no login issued.
    let wrong_secret = EVENTS_TOKEN.to_owned();
    for forged in [unknown_user, wrong_secret] {
        let response = chat_as(&app, &forged, "Hello").await;
        assert_eq!(response.status(), 401, "{forged}");
        assert_eq!(json_of(&response)["error"], "unauthorized");
    }

    // A logged-out token.
    let other = logged_in(&app, "alice").await;
    let response = logout::handle(&app, with_auth(event("logout"), &other))
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(chat_as(&app, &other, "Hello").await.status(), 401);

    // Bad input, refused before any I/O.
    let response = chat_as(&app, &token, "   ").await;
    assert_eq!(response.status(), 400);

    // A balance below the cost of one chat.
    app.config.initial_tokens = 99;
    let poor = signed_up(&app, "bob").await;
    let response = chat_as(&app, &poor, "Hello").await;
    assert_eq!(response.status(), 402);
    let body = json_of(&response);
    assert_eq!(body["error"], "insufficient_tokens");
    assert_eq!(
        (body["tokens"].as_i64(), body["cost"].as_i64()),
        (Some(99), Some(100))
    );

    assert_eq!(stub.call_count(), 0, "the model was never called");
    assert_eq!(stored_tokens(&app, "alice").await, Some(4000));
    assert_eq!(stored_tokens(&app, "bob").await, Some(99));
    assert_eq!(stored_chats(&app, "alice").await, 0);
    assert_eq!(stored_chats(&app, "bob").await, 0);
    assert_ledger_balances(&app, "alice").await;
    assert_ledger_balances(&app, "bob").await;
}

#[tokio::test]
async fn the_last_affordable_chat_reaches_the_model_and_the_next_does_not() {
    let stub = ConverseStub::start(Answer::text("ok"));
    let mut app = app_with(&stub, one_attempt()).await;
    app.config.initial_tokens = 200;
    let token = signed_up(&app, "alice").await;
    for _ in 0..2 {
        assert_eq!(chat_as(&app, &token, "Hello").await.status(), 200);
    }
    let response = chat_as(&app, &token, "Hello").await;
    assert_eq!(response.status(), 402);
    assert_eq!(json_of(&response)["tokens"], 0);
    assert_eq!(stub.call_count(), 2);
    assert_eq!(stored_tokens(&app, "alice").await, Some(0));
    assert_eq!(stored_chats(&app, "alice").await, 2);
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_paid_model_costs_a_hold_and_a_settle_and_the_dummy_one_write() {
    let stub = ConverseStub::start(Answer::text("ok"));
    let (mut app, calls) = counted_app().await;
    let token = signed_up(&app, "alice").await;
    calls.take();

    assert_eq!(chat_as(&app, &token, "free").await.status(), 200);
    assert_eq!(calls.take(), ["TransactWriteItems"], "dummy reply");

    app.models = chat_core::served::Models::only(
        Arc::new(stub.responder(one_attempt())),
        app.config.pricing,
    );
    calls.take();
    assert_eq!(chat_as(&app, &token, "paid").await.status(), 200);
    assert_eq!(
        calls.take(),
        ["TransactWriteItems", "TransactWriteItems"],
        "model reply"
    );
    // Not signed by this server: refused before DynamoDB and the model.
    let forged = AuthToken::issue(
        &Username::parse("bob").unwrap(),
        i64::from(u32::MAX),
        &SigningKey::generate(1).unwrap(),
    )
    .unwrap();
    assert_eq!(chat_as(&app, forged.expose(), "paid").await.status(), 401);
    assert_eq!(calls.take(), Vec::<String>::new(), "forged token");
    assert_eq!(stub.call_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn simultaneous_chats_with_a_model_are_still_charged_exactly() {
    // The model answers once the test says so: the three chats the balance
    // holds for are all in the model at once while the five others are
    // refused, so the holds, not the order of replies, decide.
    let gate = Gate::default();
    let stub = ConverseStub::start(Answer::gated(&gate, Answer::text("ok")));
    let mut model = one_attempt();
    model.timeout = Duration::from_secs(120);
    let mut app = app_with(&stub, model).await;
    app.config.initial_tokens = 300;
    let app = Arc::new(app);
    let token = signed_up(&app, "alice").await;
    let mut running = tokio::task::JoinSet::new();
    for i in 0..8 {
        let (app, token) = (app.clone(), token.clone());
        running.spawn(async move { chat_as(&app, &token, &format!("message {i}")).await });
    }
    let mut statuses = Vec::new();
    let waited = tokio::time::timeout(Duration::from_secs(120), async {
        while statuses.len() < 5 {
            statuses.push(
                running
                    .join_next()
                    .await
                    .unwrap()
                    .unwrap()
                    .status()
                    .as_u16(),
            );
        }
    })
    .await;
    gate.open();
    while let Some(response) = running.join_next().await {
        statuses.push(response.unwrap().status().as_u16());
    }
    assert!(
        waited.is_ok(),
        "five refusals did not come while three chats ran"
    );
    assert_eq!(statuses, [402, 402, 402, 402, 402, 200, 200, 200]);
    assert_eq!(stored_tokens(&app, "alice").await, Some(0));
    assert_eq!(stored_chats(&app, "alice").await, 3);
    // A refused chat never reaches the model: exactly the three paid for.
    assert_eq!(stub.call_count(), 3);
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_retry_with_an_idempotency_key_gets_the_first_reply_and_one_charge() {
    let stub = ConverseStub::scripted(|n| Answer::Text(format!("reply {n}")));
    let app = app_with(&stub, one_attempt()).await;
    let token = signed_up(&app, "alice").await;
    let first = keyed_chat_as(&app, &token, "order-42", "Hello").await;
    assert_eq!(first.status(), 200);
    let again = keyed_chat_as(&app, &token, "order-42", "Hello").await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(json_of(&again), json_of(&first));
    assert_eq!(json_of(&again)["response"], "reply 0");
    assert_eq!(stored_tokens(&app, "alice").await, Some(3900));
    assert_eq!(stored_chats(&app, "alice").await, 1);
    // The read before the model finds the key's record: no second call.
    assert_eq!(stub.call_count(), 1);

    // Also once the balance is spent: the retry still gets its reply.
    for i in 0..39 {
        assert_eq!(
            chat_as(&app, &token, &format!("spend {i}")).await.status(),
            200
        );
    }
    assert_eq!(stored_tokens(&app, "alice").await, Some(0));
    let late = keyed_chat_as(&app, &token, "order-42", "Hello").await;
    assert_eq!(late.status(), 200);
    assert_eq!(json_of(&late), json_of(&first));
    // The same key with another message is refused before the model too.
    let reused = keyed_chat_as(&app, &token, "order-42", "Goodbye").await;
    assert_eq!(reused.status(), 422);
    assert_eq!(
        stub.call_count(),
        40,
        "1 + 39 spending chats, none for the retries"
    );
    assert_ledger_balances(&app, "alice").await;
}
