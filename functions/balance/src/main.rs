//! The `balance` Lambda: configuration, the DynamoDB client and the token-signing
//! key once per cold start, then one handler call per request.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let app = chat_core::App::start_checking_tokens().await?;
    lambda_http::run(lambda_http::service_fn(|request| {
        balance::handle(&app, request)
    }))
    .await
}
