//! `POST /login/`: exchanges a username and password for a session token.

use chat_core::clock::Timestamp;
use chat_core::domain::{LoginName, Password};
use chat_core::http::{
    deadline, json_body, require_method, required_string, source, CredentialsBody,
};
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
    // in, yet it is counted and answered as any wrong password is: no
    // answer tells an impossible name from an unknown or a real one.
    // Anything registration ever took can log in, earlier rules included.
    let name = LoginName::parse(&username);
    let now = Timestamp::now();
    // The slot first, whatever the name: a name nobody has is read, counted
    // and slowed down as a real one is, so no answer and no amount of work
    // tells a stranger which names exist. Waiting costs no argon2id, and
    // guesses sent at once get one password check per slot.
    let slot = app
        .store
        .begin_login(&name, &source(&request), now, deadline(&request))
        .await?;
    // A password no rule ever took matches nothing: no hash is checked, for
    // a real name as for any other.
    let matches = match Password::parse_existing(password) {
        Ok(password) => passwords::verify(password, slot.password_hash).await?,
        Err(_) => false,
    };
    let Some(username) = name.username().filter(|_| matches) else {
        // No username here: a refused login's "username" is now and then a
        // password typed into the wrong field. The slot stays counted.
        tracing::info!("login refused");
        return Err(ApiError::InvalidCredentials);
    };
    let token = app
        .auth
        .issue(username, now.plus(app.config.session_ttl))
        .await?;
    // The session opens in the same write that forgets the failures.
    app.store
        .open_login_session(&token, now, deadline(&request))
        .await?;
    tracing::info!(user = %username, "logged in");
    Ok(json_response(
        StatusCode::OK,
        &json!({"token": token.expose()}),
    ))
}
