//! The `web` Lambda: the page's files hashed and named once per cold start,
//! then one lookup per request.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let site = web::Site::from_env();
    lambda_http::run(lambda_http::service_fn(|request| {
        web::handle(&site, request)
    }))
    .await
}
