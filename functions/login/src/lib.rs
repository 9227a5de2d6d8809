//! `POST /login/`: exchanges a username and password for a session token.

use chat_core::clock::Timestamp;
use chat_core::domain::{Password, Username};
use chat_core::http::{deadline, json_body, require_method, required_string, CredentialsBody};
use chat_core::response::json_response;
use chat_core::{passwords, ApiError, App};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Error, Request, Response};
use serde_json::json;

pub async fn handle(app: &App, request: Request) -> Result<Response<Body>, Error> {
    let started = std::time::Instant::now();
    app.answer("login", started, login(app, request).await)
}

async fn login(app: &App, request: Request) -> Result<Response<Body>, ApiError> {
    require_method(&request, Method::POST)?;
    let body: CredentialsBody = json_body(&request)?;
    let username = required_string(body.username, "username")?;
    let password = required_string(body.password, "password")?;
    // A name or password that could never have been registered cannot log
    // in; it gets the same answer as a wrong password, not a hint. Anything
    // registration ever took can, including what earlier rules took.
    let (Ok(username), Ok(password)) = (
        Username::parse_existing(&username),
        Password::parse_existing(password),
    ) else {
        return Err(ApiError::InvalidCredentials);
    };
    let stored = app.store.find_credentials(&username).await?;
    let now = Timestamp::now();
    let failures = stored.as_ref().map(|c| c.failures).unwrap_or_default();
    // Checked before the hash: a guesser waiting out the slow-down costs
    // no argon2id either.
    if let Some(wait) = failures.wait(now.unix_seconds()) {
        tracing::info!("login slowed down");
        return Err(ApiError::TooManyAttempts {
            retry_after: wait.unsigned_abs(),
        });
    }
    let exists = stored.is_some();
    if !passwords::verify(password, stored.map(|c| c.password_hash)).await? {
        // No username here: a refused login's "username" is now and then a
        // password typed into the wrong field.
        tracing::info!("login refused");
        if exists {
            app.store
                .record_login_failure(&username, &failures, now.unix_seconds())
                .await?;
        }
        return Err(ApiError::InvalidCredentials);
    }
    if failures.count > 0 {
        app.store.clear_login_failures(&username).await?;
    }
    let token = app
        .auth
        .issue(&username, now.plus(app.config.session_ttl))
        .await?;
    app.store
        .create_session(&token, now, deadline(&request))
        .await?;
    tracing::info!(user = %username, "logged in");
    Ok(json_response(
        StatusCode::OK,
        &json!({"token": token.expose()}),
    ))
}
