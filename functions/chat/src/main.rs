//! The `chat` Lambda: configuration, the DynamoDB client and, when
//! `MODEL_ID` is set, the Bedrock client once per cold start, then one
//! handler call per request.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let mut app = chat_core::App::start().await?;
    // The signing key, read now so the first request does not wait for it.
    app.auth.warm_up().await;
    chat_model::install_from_env(&mut app).await?;
    lambda_http::run(lambda_http::service_fn(|request| {
        chat::handle(&app, request)
    }))
    .await
}
