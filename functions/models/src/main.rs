//! The `models` Lambda: the served models and prices once per cold start, then
//! one handler call per request.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let (app, served) = models::start().await?;
    lambda_http::run(lambda_http::service_fn(|request| {
        models::handle(&app, &served, request)
    }))
    .await
}
