//! The `embeddings` Lambda: the catalog's embedding models once per cold
//! start, then one handler call per request.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let mut app = chat_core::App::start().await?;
    app.auth.warm_up().await;
    chat_model::install_from_env(&mut app).await?;
    lambda_http::run(lambda_http::service_fn(|request| {
        embeddings::handle(&app, request)
    }))
    .await
}
