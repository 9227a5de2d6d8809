//! `POST /register/`: creates a user with the initial token grant.

use chat_core::clock::Instant;
use chat_core::domain::{Password, Username};
use chat_core::http::{
    deadline, json_body, json_response, require_method, required_string, CredentialsBody,
};
use chat_core::{passwords, ApiError, App};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Error, Request, Response};
use serde_json::json;

pub async fn handle(app: &App, request: Request) -> Result<Response<Body>, Error> {
    let started = std::time::Instant::now();
    app.answer("register", started, register(app, request).await)
}

async fn register(app: &App, request: Request) -> Result<Response<Body>, ApiError> {
    require_method(&request, Method::POST)?;
    let body: CredentialsBody = json_body(&request)?;
    let username = Username::parse(&required_string(body.username, "username")?)
        .map_err(|why| ApiError::invalid_field("username", why))?;
    let password = Password::parse(required_string(body.password, "password")?)
        .map_err(|why| ApiError::invalid_field("password", why))?;
    let password_hash = passwords::hash(password).await?;
    app.store
        .create_user(
            &username,
            password_hash,
            app.config.initial_tokens,
            Instant::now(),
            deadline(&request),
        )
        .await?;
    tracing::info!(user = %username, "registered");
    Ok(json_response(
        StatusCode::CREATED,
        &json!({"message": "User registered successfully."}),
    ))
}
