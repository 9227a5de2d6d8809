//! The `responses` Lambda: as `completions`', its answers stream, so the
//! app is shared with each stream's task.

use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let app = Arc::new(chat_model::start().await?);
    lambda_http::run_with_streaming_response(lambda_http::service_fn(|request| {
        responses::handle(app.clone(), request)
    }))
    .await
}
