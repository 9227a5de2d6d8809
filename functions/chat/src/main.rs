//! The `chat` Lambda: configuration, the DynamoDB client and, when
//! `MODEL_ID` is set, the Bedrock client once per cold start, then one
//! handler call per request.

use std::sync::Arc;

use chat::model::{BedrockResponder, ModelConfig};
use chat_core::pricing::Pricing;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let mut app = chat_core::App::start().await?;
    // The signing key, read now so the first request does not wait for it.
    app.auth.warm_up().await;
    // Logged for the same reason as in `App::start`: the error's Debug form
    // alone would not name the variable to fix.
    let model =
        ModelConfig::from_env().inspect_err(|e| tracing::error!("invalid configuration: {e}"))?;
    match model {
        Some(model) => {
            tracing::info!(model = %model.model_id, "replies come from Bedrock");
            app.responder = Arc::new(BedrockResponder::from_environment(&model).await);
        }
        // The dummy reply reports no usage: usage pricing would make every
        // chat free.
        None if matches!(app.config.pricing, Pricing::Usage(_)) => {
            let error = "PRICING=usage needs a model: set MODEL_ID";
            tracing::error!("invalid configuration: {error}");
            return Err(error.into());
        }
        None => {}
    }
    lambda_http::run(lambda_http::service_fn(|request| {
        chat::handle(&app, request)
    }))
    .await
}
