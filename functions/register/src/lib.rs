//! `POST /register/`: creates a user with the initial token grant.

use chat_core::clock::Timestamp;
use chat_core::config::Registration;
use chat_core::domain::{Password, Username};
use chat_core::http::{
    deadline, json_body, require_method, required_string, source, CredentialsBody,
};
use chat_core::response::json_response;
use chat_core::store::INVITE_CODE_PREFIX;
use chat_core::{passwords, ApiError, App};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Error, Request, Response};
use serde_json::{json, Value};

/// An invite code's form: checked before any hashing, so a request without
/// one costs no argon2id.
fn invite_code(raw: Option<Value>) -> Result<String, ApiError> {
    match raw {
        Some(Value::String(code))
            if code.starts_with(INVITE_CODE_PREFIX)
                && code.len() <= 64
                && code
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') =>
        {
            Ok(code)
        }
        None | Some(Value::Null) => Err(ApiError::InvalidInvite),
        Some(Value::String(_)) => Err(ApiError::InvalidInvite),
        Some(_) => Err(ApiError::invalid_field("invite", "must be a string")),
    }
}

pub async fn handle(app: &App, request: Request) -> Result<Response<Body>, Error> {
    let started = std::time::Instant::now();
    app.answer("register", started, register(app, request).await)
}

async fn register(app: &App, request: Request) -> Result<Response<Body>, ApiError> {
    require_method(&request, Method::POST)?;
    if app.config.registration == Registration::Closed {
        return Err(ApiError::RegistrationClosed);
    }
    let body: CredentialsBody = json_body(&request)?;
    let username = Username::parse(&required_string(body.username, "username")?)
        .map_err(|why| ApiError::invalid_field("username", why))?;
    let password = Password::parse(required_string(body.password, "password")?)
        .map_err(|why| ApiError::invalid_field("password", why))?;
    let invite = match app.config.registration {
        Registration::Invite => Some(invite_code(body.invite)?),
        // Anyone may register: a code sent along is not needed, nor spent.
        _ => None,
    };
    let password_hash = passwords::hash(password).await?;
    app.store
        .create_user(
            &username,
            password_hash,
            app.config.initial_tokens,
            invite.as_deref(),
            &source(&request),
            Timestamp::now(),
            deadline(&request),
        )
        .await?;
    tracing::info!(user = %username, "registered");
    Ok(json_response(
        StatusCode::CREATED,
        &json!({"message": "User registered successfully."}),
    ))
}
