//! The `completions` Lambda: as `chat`'s, but its answers stream (Lambda
//! response streaming), so the app is shared with each stream's task.

use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let app = Arc::new(chat_model::start().await?);
    lambda_http::run_with_streaming_response(lambda_http::service_fn(|request| {
        completions::handle(app.clone(), request)
    }))
    .await
}
