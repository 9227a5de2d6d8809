//! The `chat` Lambda: configuration, the DynamoDB client and, when
//! `MODEL_ID` is set, the Bedrock client once per cold start, then one
//! handler call per request.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let app = chat_model::start().await?;
    lambda_http::run(lambda_http::service_fn(|request| {
        chat::handle(&app, request)
    }))
    .await
}
