//! A catalog of models, each priced its own way: chosen per request on
//! `/chat/` and `/v1`, listed by `/v1/models`, every chat charged exactly its
//! model's price (cache reads and writes included), and a hold priced once,
//! whatever the catalog says by the time it settles.

use chat_core::credits::Credits;
use std::sync::Arc;
use std::time::Duration;

use api_tests::completion::*;
use api_tests::conflicts::with_conflicts;
use api_tests::converse_stub::{Answer, ConverseStub, Streamed};
use api_tests::runtime_api::{cold_start, debug_binary, start};
use api_tests::*;
use chat_core::catalog::Catalog;
use chat_core::clock::Timestamp;
use chat_core::config::Config;
use chat_core::deadline::Deadline;
use chat_core::pricing::{Pricing, Usage, UsagePrices};
use chat_core::served::{Models, ServedModel};
use chat_core::App;
use chat_model::ModelConfig;
use devtools::dynamodb_local::{client, fresh_tables, quiet_app};
use serde_json::{json, Value};

/// Two models on one stand-in: `dear` priced by use with cache prices of
/// its own and a short reply cap, `cheap` flat, and the dummy.
const CATALOG: &str = r#"{
  "default": "cheap",
  "models": [
    {"id": "dear", "bedrock_model": "stand-in.dear-v1",
     "price_per_1000": {"input": 1000, "output": 5000, "cache_read": 100, "cache_write": 1250},
     "max_tokens": 100, "cache": true},
    {"id": "cheap", "bedrock_model": "stand-in.cheap-v1", "flat": 7},
    {"id": "dummy", "flat": 100}
  ]
}"#;

/// The app serving `catalog` (as `models_of` would, on the stand-in).
fn serving(
    catalog: &Catalog,
    stub: &ConverseStub,
    config: Config,
    client: aws_sdk_dynamodb::Client,
) -> App {
    let mut app = quiet_app(config, client);
    let served = catalog
        .models
        .iter()
        .map(|model| {
            let responder: Arc<dyn chat_core::responder::Responder> = match &model.bedrock_model {
                Some(bedrock) => {
                    let mut config = ModelConfig::new(bedrock.clone());
                    config.max_attempts = 1;
                    config.max_tokens = model.max_tokens.unwrap_or(config.max_tokens);
                    config.cache = model.cache;
                    Arc::new(stub.responder(config))
                }
                None => Arc::new(chat_core::responder::DummyResponder),
            };
            ServedModel {
                id: model.id.clone(),
                responder,
                pricing: model.pricing,
            }
        })
        .collect();
    app.models = Models::new(served, &catalog.default).unwrap();
    app
}

async fn app_for(catalog: &Catalog, stub: &ConverseStub) -> Arc<App> {
    let client = client();
    let config = Config::with_tables(fresh_tables(&client).await);
    Arc::new(serving(catalog, stub, config, client))
}

async fn chat_with(
    app: &App,
    token: &str,
    model: Option<&str>,
    message: &str,
) -> lambda_http::Response<lambda_http::Body> {
    let mut body = json!({ "message": message });
    if let Some(model) = model {
        body["model"] = json!(model);
    }
    chat::handle(
        app,
        with_auth(with_body(event("chat"), &body.to_string()), token),
    )
    .await
    .unwrap()
}

fn dear_prices() -> UsagePrices {
    match Catalog::parse(CATALOG).unwrap().models[0].pricing {
        Pricing::Usage(prices) => prices,
        Pricing::Flat(_) => unreachable!("dear is priced by use"),
    }
}

#[tokio::test]
async fn each_chat_is_charged_exactly_its_models_price_cache_included() {
    // dear reports 200 in, 30 out, 1000 read from its cache, 40 written.
    let stub = ConverseStub::start(Answer::Stream(
        Streamed::pieces(&["from ", "the model"])
            .usage(200, 30)
            .cache(1000, 40),
    ));
    let catalog = Catalog::parse(CATALOG).unwrap();
    let app = app_for(&catalog, &stub).await;
    let token = signed_up(&app, "alice").await;
    // 200 x 1000 + 30 x 5000 + 1000 x 100 + 40 x 1250 = 500 000 thousandths.
    let dear = 500;
    assert_eq!(
        dear_prices().cost(Usage {
            input_tokens: 200,
            output_tokens: 30,
            cache_read_tokens: 1000,
            cache_write_tokens: 40,
        }),
        Credits::new(dear)
    );

    // (model named, tokens charged): the default, each by name, on /chat/.
    for (model, cost) in [
        (None, 7),
        (Some("cheap"), 7),
        (Some("dear"), dear),
        (Some("dummy"), 100),
    ] {
        let response = chat_with(&app, &token, model, "Hello").await;
        assert_eq!(response.status(), 200, "{model:?}");
        assert_eq!(
            response.headers()["tokens-charged"],
            cost.to_string().as_str(),
            "{model:?}"
        );
    }
    let mut spent = 7 + 7 + dear + 100;
    // And on /v1, by `model`, with the cache in OpenAI's usage.
    let body = json!({"model": "dear", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}]});
    let answer = complete(&app, &token, body).await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.header("tokens-charged"),
        Some(dear.to_string().as_str())
    );
    let usage = &answer.json()["usage"];
    assert_eq!(usage["prompt_tokens"], 200 + 1000 + 40);
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 1000);
    assert_eq!(usage["completion_tokens"], 30);
    spent += dear;
    // The model's own id went to Bedrock, and the cache point after the
    // system prompt only for the model that asks for caching.
    let calls = stub.calls();
    assert_eq!(calls.len(), 4, "cheap twice, dear twice");
    assert_eq!(calls[0].model_id, "stand-in.cheap-v1");
    assert_eq!(calls[2].model_id, "stand-in.dear-v1");
    assert_eq!(calls[3].body["system"][1]["cachePoint"]["type"], "default");
    assert_eq!(calls[2].body["inferenceConfig"]["maxTokens"], 100);

    assert_eq!(
        stored_tokens(&app, "alice").await,
        Some(4000 - spent as i64)
    );
    // Every chat records its model and what it read from the cache.
    let chats = ledger_entries(&app, "alice", "0").await;
    let models: Vec<&str> = chats
        .iter()
        .map(|c| c["model"].as_s().unwrap().as_str())
        .collect();
    assert_eq!(models, ["cheap", "cheap", "dear", "dummy", "dear"]);
    assert_eq!(chats[2]["cache_read_tokens"].as_n().unwrap(), "1000");
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_hold_is_each_models_own_bound_and_records_its_model_and_prices() {
    let gate = api_tests::converse_stub::Gate::default();
    let stub = ConverseStub::start(Answer::gated(&gate, Answer::used("ok", 10, 2)));
    let catalog = Catalog::parse(CATALOG).unwrap();
    let app = app_for(&catalog, &stub).await;
    let token = signed_up(&app, "alice").await;
    let pending = {
        let (app, token) = (app.clone(), token.clone());
        tokio::spawn(async move { chat_with(&app, &token, Some("dear"), "x").await })
    };
    let started = std::time::Instant::now();
    while stub.call_count() == 0 {
        assert!(started.elapsed() < Duration::from_secs(60), "no model call");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // dear's bound: (1 byte + 16 + 64) read, its own cap of 100 written.
    let hold = dear_prices().cost(Usage::bound(1 + 16, 100));
    assert_eq!(
        stored_tokens(&app, "alice").await,
        Some(4000 - hold.get() as i64)
    );
    let holds = ledger_entries(&app, "alice", "ledger#hold#").await;
    assert_eq!(holds[0]["model"].as_s().unwrap(), "dear");
    assert_eq!(
        holds[0]["prices"].as_s().unwrap(),
        "per1000:in=1000,out=5000,cache_read=100,cache_write=1250"
    );
    gate.open();
    assert_eq!(pending.await.unwrap().status(), 200);
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn models_are_listed_only_to_a_live_session() {
    let stub = ConverseStub::start(Answer::text("unused"));
    let app = app_for(&Catalog::parse(CATALOG).unwrap(), &stub).await;
    let token = signed_up(&app, "alice").await;
    let listed = catalog_listing();
    let list = |token: String| {
        let (app, listed) = (&app, &listed);
        async move {
            models::handle(
                app,
                listed,
                with_auth(event("models"), &format!("Bearer {token}")),
            )
            .await
            .unwrap()
        }
    };
    assert_eq!(list(token.clone()).await.status(), 200);
    let other = logged_in(&app, "alice").await;
    let ended = logout::handle(&app, with_auth(event("logout"), &token))
        .await
        .unwrap();
    assert_eq!(ended.status(), 204);
    let refused = list(token).await;
    assert_eq!(refused.status(), 401);
    assert_eq!(json_of(&refused)["error"]["code"], "invalid_api_key");
    // The other session lists them until the operator disables the account.
    assert_eq!(list(other.clone()).await.status(), 200);
    let alice = chat_core::domain::Username::parse("alice").unwrap();
    assert!(app.store.set_disabled(&alice, true).await.unwrap());
    let disabled = list(other).await;
    assert_eq!(disabled.status(), 403);
    assert_eq!(json_of(&disabled)["error"]["code"], "account_disabled");
    assert_ledger_balances(&app, "alice").await;
}

/// What `GET /v1/models` lists of [`CATALOG`].
fn catalog_listing() -> Vec<chat_core::openai::ListedModel> {
    chat_core::openai::listed_models(
        |name| (name == "CATALOG").then(|| CATALOG.to_owned()),
        chat_core::pricing::Pricing::Flat(1),
    )
    .unwrap()
}

#[tokio::test]
async fn models_lists_the_catalog_and_an_unknown_model_is_404_on_both_routes() {
    let stub = ConverseStub::start(Answer::text("unused"));
    let catalog = Catalog::parse(CATALOG).unwrap();
    let app = app_for(&catalog, &stub).await;
    let token = signed_up(&app, "alice").await;
    let listed = catalog_listing();
    let list = models::handle(
        &app,
        &listed,
        with_auth(event("models"), &format!("Bearer {token}")),
    )
    .await
    .unwrap();
    let listed: Vec<Value> = json_of(&list)["data"].as_array().unwrap().clone();
    let names: Vec<&str> = listed.iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(names, ["dear", "cheap", "dummy"]);
    // Each with its price, in the catalog's terms.
    let prices: Vec<&Value> = listed.iter().map(|m| &m["pricing"]).collect();
    assert_eq!(
        prices,
        [
            &json!({"price_per_1000": {"input": 1000, "output": 5000, "cache_read": 100, "cache_write": 1250}}),
            &json!({"flat": 7}),
            &json!({"flat": 100}),
        ]
    );

    let response = chat_with(&app, &token, Some("gpt-4o"), "Hello").await;
    assert_eq!(response.status(), 404);
    assert_eq!(json_of(&response)["error"], "model_not_found");
    let response = chat_with(&app, &token, None, "Hello").await;
    assert_eq!(response.status(), 200);
    let answer = complete(
        &app,
        &token,
        json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(answer.status, 404);
    assert_eq!(answer.json()["error"]["code"], "model_not_found");
    assert_eq!(
        stub.call_count(),
        1,
        "only the default's chat reached a model"
    );
    assert_eq!(stored_tokens(&app, "alice").await, Some(4000 - 7));
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_catalog_change_while_a_hold_is_open_does_not_change_its_settle() {
    let stub = ConverseStub::start(Answer::used("priced then", 100, 20));
    let catalog = Catalog::parse(CATALOG).unwrap();
    let client = client();
    let config = Config::with_tables(fresh_tables(&client).await);
    let (conflicted, conflicts) = with_conflicts(&client, "TransactWriteItems");
    let before = serving(&catalog, &stub, config.clone(), conflicted);
    let token = signed_up(&before, "alice").await;
    // The settle cannot commit: what the chat owes, at the prices of its
    // hold, waits on the hold.
    conflicts.arm_after(1, usize::MAX);
    let response = chat_with(&before, &token, Some("dear"), "priced").await;
    assert_eq!(response.status(), 200);
    let owed = dear_prices().cost(Usage {
        input_tokens: 100,
        output_tokens: 20,
        ..Usage::default()
    });
    assert_eq!(
        response.headers()["tokens-charged"],
        owed.to_string().as_str()
    );
    conflicts.arm(0);

    // The operator doubles dear's prices; a new cold start serves them.
    let doubled = Catalog::parse(&CATALOG.replace(
        "\"input\": 1000, \"output\": 5000",
        "\"input\": 2000, \"output\": 10000",
    ))
    .unwrap();
    assert_ne!(doubled.version, catalog.version);
    let after = serving(&doubled, &stub, config, client);
    let later = Timestamp::now().plus(after.config.hold_ttl + Duration::from_secs(1));
    let swept = sweeper::sweep(&after, later, Deadline::none())
        .await
        .unwrap();
    assert_eq!(swept.settled_owed, 1);
    assert_eq!(
        stored_tokens(&after, "alice").await,
        Some(4000 - owed.get() as i64)
    );
    assert_ledger_balances(&after, "alice").await;
}

#[tokio::test]
async fn the_chat_function_serves_the_catalog_in_its_environment() {
    let stub = ConverseStub::start(Answer::Stream(
        Streamed::pieces(&["hi"]).usage(100, 10).cache(0, 0),
    ));
    let app = devtools::dynamodb_local::fresh_app().await;
    assert_eq!(register(&app, "alice").await.status(), 201);
    start_events_session(&app).await.unwrap();
    let event = std::fs::read_to_string(events_dir().join("chat.json")).unwrap();
    // The event names no model: the catalog's default, dear, answers.
    let catalog = CATALOG.replace("\"default\": \"cheap\"", "\"default\": \"dear\"");
    let run = cold_start(
        &debug_binary("chat"),
        &event,
        app.store.tables(),
        &[
            ("CATALOG", catalog.as_str()),
            ("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", stub.url()),
        ],
    );
    assert_eq!(run.answer["statusCode"], 200, "{}", run.output);
    // 100 x 1000 + 10 x 5000 thousandths.
    assert_eq!(stored_tokens(&app, "alice").await, Some(4000 - 150));
    assert_eq!(stub.calls()[0].model_id, "stand-in.dear-v1");

    // A catalog with a fault stops the cold start, naming its line.
    let (failed, output) = start(
        &debug_binary("chat"),
        &event,
        app.store.tables(),
        &[(
            "CATALOG",
            "{\"default\": \"a\",\n \"models\": [\n {\"id\": \"a\", \"flat\": 0}]}",
        )],
    )
    .exit();
    assert!(failed, "{output}");
    assert!(output.contains("catalog line 3"), "{output}");
    assert_ledger_balances(&app, "alice").await;
}
