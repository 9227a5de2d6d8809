//! `POST /logout/`: ends the caller's session; its token stops working at once.

use chat_core::http::require_method;
use chat_core::{ApiError, App};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Error, Request, Response};

pub async fn handle(app: &App, request: Request) -> Result<Response<Body>, Error> {
    let started = std::time::Instant::now();
    app.answer("logout", started, logout(app, request).await)
}

async fn logout(app: &App, request: Request) -> Result<Response<Body>, ApiError> {
    require_method(&request, Method::POST)?;
    let token = app.auth.authenticate(&request).await?;
    app.store.end_session(&token).await?;
    tracing::info!(user = %token.username(), "logged out");
    let mut response = Response::new(Body::Empty);
    *response.status_mut() = StatusCode::NO_CONTENT;
    Ok(response)
}
