//! The `usage` Lambda (GET /usage/): configuration, the DynamoDB client and the token-signing
//! key once per cold start, then one handler call per request.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let app = chat_core::App::start().await?;
    // The signing key, read now so the first request does not wait for it.
    app.auth.warm_up().await;
    lambda_http::run(lambda_http::service_fn(|request| {
        usage::handle(&app, request)
    }))
    .await
}
