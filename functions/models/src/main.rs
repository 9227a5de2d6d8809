//! The `models` Lambda: the served models and prices once per cold start, then
//! one handler call per request.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let app = chat_core::App::start().await?;
    app.auth.warm_up().await;
    // An invalid catalog stops the cold start with its sentence (the
    // line at fault), as the model functions' own start does.
    let served =
        chat_core::openai::listed_models(|name| std::env::var(name).ok(), app.config.pricing)
            .map_err(|e| format!("invalid configuration: {e}"))?;
    lambda_http::run(lambda_http::service_fn(|request| {
        models::handle(&app, &served, request)
    }))
    .await
}
