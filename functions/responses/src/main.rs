//! The `responses` Lambda: as `completions`', its answers stream, so the
//! app is shared with each stream's task.

use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let mut app = chat_core::App::start().await?;
    app.auth.warm_up().await;
    chat_model::install_from_env(&mut app).await?;
    let app = Arc::new(app);
    lambda_http::run_with_streaming_response(lambda_http::service_fn(|request| {
        responses::handle(app.clone(), request)
    }))
    .await
}
