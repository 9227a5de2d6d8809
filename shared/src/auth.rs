//! Who is calling: the token in `Authorization`, checked against the
//! signing key in code. A forged, garbled or expired token is refused here
//! at no DynamoDB cost; whether a signed token's session is still live (not
//! logged out or revoked) is for the account item to say, in the same call
//! that serves the request.

use lambda_http::Request;
use tokio::sync::OnceCell;

use crate::clock::Timestamp;
use crate::domain::{AuthToken, SigningKey, TokenKind, Username, VerifiedToken};
use crate::error::ApiError;
use crate::http::auth_token;
use crate::store::Store;

/// The signing key, read once per cold start and then held.
pub struct Authenticator {
    store: Store,
    key: OnceCell<SigningKey>,
}

/// The id of the first key; a later rotation would add the next.
const FIRST_KEY_ID: u8 = 1;

impl Authenticator {
    pub fn new(store: Store) -> Self {
        Authenticator {
            store,
            key: OnceCell::new(),
        }
    }

    /// Reads the key ahead of the first request (a function's cold start).
    /// A failure is only logged: the first request tries again.
    pub async fn warm_up(&self) {
        if let Err(e) = self.key().await {
            tracing::warn!(error = %e, "the token-signing key could not be read yet");
        }
    }

    /// The caller's token, if this server signed it and it has not expired.
    pub async fn authenticate(&self, request: &Request) -> Result<VerifiedToken, ApiError> {
        let token = auth_token(request)?;
        self.verify(token).await
    }

    pub async fn verify(&self, token: AuthToken) -> Result<VerifiedToken, ApiError> {
        // No key yet means no token was ever issued: nothing can be valid.
        let Some(key) = self.key().await? else {
            return Err(ApiError::Unauthorized);
        };
        token
            .verify(key, Timestamp::now().unix_seconds())
            .ok_or(ApiError::Unauthorized)
    }

    /// A new session token for `username` until `expires_at`; on a new
    /// deployment the first login makes the key.
    pub async fn issue(
        &self,
        username: &Username,
        expires_at: Timestamp,
    ) -> Result<VerifiedToken, ApiError> {
        self.issue_kind(TokenKind::Session, username, expires_at.unix_seconds())
            .await
    }

    /// A new token of `kind` for `username`, valid until `expires_at`
    /// (epoch seconds).
    pub async fn issue_kind(
        &self,
        kind: TokenKind,
        username: &Username,
        expires_at: i64,
    ) -> Result<VerifiedToken, ApiError> {
        let key = match self.key().await? {
            Some(key) => key,
            None => {
                let fresh = SigningKey::generate(FIRST_KEY_ID).map_err(ApiError::internal)?;
                let stored = self.store.create_signing_key(fresh).await?;
                self.key.get_or_init(|| async { stored }).await
            }
        };
        AuthToken::issue_kind(kind, username, expires_at, key).map_err(ApiError::internal)
    }

    /// The key, read until found: a function that started before the first
    /// login must still see the key that login makes.
    async fn key(&self) -> Result<Option<&SigningKey>, ApiError> {
        if let Some(key) = self.key.get() {
            return Ok(Some(key));
        }
        match self.store.signing_key().await? {
            Some(key) => Ok(Some(self.key.get_or_init(|| async { key }).await)),
            None => Ok(None),
        }
    }
}
