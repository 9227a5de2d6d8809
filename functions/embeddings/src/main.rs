//! The `embeddings` Lambda: the app with the catalog's models (its
//! embedding models among them) built once per cold start, then one
//! handler call per request.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let app = chat_model::start().await?;
    lambda_http::run(lambda_http::service_fn(|request| {
        embeddings::handle(&app, request)
    }))
    .await
}
