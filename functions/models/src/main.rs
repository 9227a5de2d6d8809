//! The `models` Lambda: the served models' names once per cold start, then
//! one handler call per request.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let app = chat_core::App::start().await?;
    app.auth.warm_up().await;
    // An invalid catalog stops the cold start with its sentence (the
    // line at fault), as the model functions' own start does.
    let ids = chat_core::openai::served_models(|name| std::env::var(name).ok())
        .map_err(|e| format!("invalid configuration: {e}"))?;
    lambda_http::run(lambda_http::service_fn(|request| {
        models::handle(&app, &ids, request)
    }))
    .await
}
