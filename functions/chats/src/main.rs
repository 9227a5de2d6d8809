//! The `chats` Lambda: configuration and the DynamoDB client once per cold
//! start, then one handler call per request.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let app = chat_core::App::start().await?;
    lambda_http::run(lambda_http::service_fn(|request| {
        chats::handle(&app, request)
    }))
    .await
}
