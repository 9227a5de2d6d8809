//! The `models` Lambda: the served model's name once per cold start, then
//! one handler call per request.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let app = chat_core::App::start().await?;
    app.auth.warm_up().await;
    let model = chat_core::openai::served_model(|name| std::env::var(name).ok());
    lambda_http::run(lambda_http::service_fn(|request| {
        models::handle(&app, &model, request)
    }))
    .await
}
