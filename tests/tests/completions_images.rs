//! Images on `/v1/chat/completions`: `image_url` parts with `data:` URLs
//! reach Converse as image blocks for a model that takes images; a remote
//! URL, a model without images, or bytes that are not what they claim are
//! a 400 that changes nothing. The hold bounds each image's tokens; the
//! model's usage is charged. Every test ends with the ledger.

use std::sync::Arc;

use api_tests::completion::*;
use api_tests::converse_stub::{Answer, ConverseStub};
use api_tests::*;
use base64::Engine;
use chat_core::pricing::{Pricing, Usage, UsagePrices};
use chat_core::{App, Config};
use chat_model::ModelConfig;
use devtools::dynamodb_local::{client, fresh_tables, quiet_app};
use serde_json::{json, Value};

const MODEL_ID: &str = "test-model";
const PRICES: UsagePrices = UsagePrices::plain(3, 15);
/// The PNG signature and the start of its header: a PNG to the edge's
/// check, which is all the stand-in needs.
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01";

async fn app_with(stub: &ConverseStub, images: bool) -> Arc<App> {
    let client = client();
    let mut config = Config::with_tables(fresh_tables(&client).await);
    config.pricing = Pricing::Usage(PRICES);
    config.initial_tokens = 4000;
    let mut app = quiet_app(config, client);
    let mut model = ModelConfig::new(MODEL_ID);
    model.max_attempts = 1;
    model.images = images;
    app.models =
        chat_core::served::Models::only(Arc::new(stub.responder(model)), app.config.pricing);
    Arc::new(app)
}

fn png_url() -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(PNG);
    format!("data:image/png;base64,{b64}")
}

fn asking_about(url: &str) -> Value {
    json!({
        "model": MODEL_ID,
        "max_tokens": 100,
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": url, "detail": "auto"}},
        ]}],
    })
}

#[tokio::test]
async fn an_inline_image_reaches_converse_as_an_image_block_and_is_charged_the_usage() {
    let stub = ConverseStub::start(Answer::used("A pixel.", 1700, 4));
    let app = app_with(&stub, true).await;
    let token = signed_up(&app, "alice").await;
    let answer = complete(&app, &token, asking_about(&png_url())).await;
    assert_eq!(answer.status, 200, "{:?}", answer.json());
    assert_eq!(
        answer.json()["choices"][0]["message"]["content"],
        "A pixel."
    );
    let sent = &stub.calls()[0].body;
    let content = &sent["messages"][0]["content"];
    // The image first, then the text, as Converse's examples have them.
    assert_eq!(content[0]["image"]["format"], "png");
    let bytes = content[0]["image"]["source"]["bytes"].as_str().unwrap();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(bytes)
        .unwrap();
    assert_eq!(decoded, PNG);
    assert_eq!(content[1]["text"], "What is this?");
    // 1700 tokens read (the image's among them): the hold's bound of
    // 3000 an image covered them, and the usage is what is charged.
    let cost = PRICES.cost(Usage {
        input_tokens: 1700,
        output_tokens: 4,
        ..Default::default()
    });
    assert_eq!(
        stored_tokens(&app, "alice").await,
        Some(4000 - cost.get() as i64)
    );
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn remote_urls_models_without_images_and_false_bytes_are_a_400_that_changes_nothing() {
    let stub = ConverseStub::start(Answer::text("never"));
    let app = app_with(&stub, true).await;
    let token = signed_up(&app, "alice").await;
    let jpeg_claiming_png = format!(
        "data:image/jpeg;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(PNG)
    );
    for (url, says) in [
        ("https://example.com/cat.png", "not fetched"),
        (jpeg_claiming_png.as_str(), "not image/jpeg"),
        ("data:image/bmp;base64,Qk0=", "image/bmp"),
    ] {
        let answer = complete(&app, &token, asking_about(url)).await;
        assert_eq!(answer.status, 400, "{url}");
        let error = answer.json();
        assert_eq!(error["error"]["param"], "messages");
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{url}: {message}");
    }
    let plain = app_with(&stub, false).await;
    let other = signed_up(&plain, "bob").await;
    let answer = complete(&plain, &other, asking_about(&png_url())).await;
    assert_eq!(answer.status, 400);
    let message = answer.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains("does not take images"), "{message}");
    assert_eq!(stub.call_count(), 0);
    assert_eq!(stored_tokens(&app, "alice").await, Some(4000));
    assert_eq!(stored_tokens(&plain, "bob").await, Some(4000));
    assert_ledger_balances(&app, "alice").await;
    assert_ledger_balances(&plain, "bob").await;
}
