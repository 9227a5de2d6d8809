//! Who is calling: the token in `Authorization`, checked against the
//! signing keys in code. A forged, garbled or expired token is refused here
//! at no DynamoDB cost; whether a signed token's session is still live (not
//! logged out or revoked) is for the account item to say, in the same call
//! that serves the request.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lambda_http::Request;

use crate::clock::Timestamp;
use crate::domain::{AuthToken, KeyRing, SigningKey, TokenKind, Username, VerifiedToken};
use crate::error::ApiError;
use crate::http::auth_token;
use crate::store::Store;

/// How long a function goes on with the keys it read before it reads them
/// again: so a rotation reaches every signer, and a retirement every
/// verifier, within this long. One `GetItem` per warm instance this often.
pub const KEY_REFRESH: Duration = Duration::from_secs(300);

/// The least time between two reads prompted by tokens naming a key this
/// function does not hold (one signed by an instance that read a rotation
/// first): the first such token is read for at once, and a stream of tokens
/// naming made-up keys costs at most one read this often, never one per
/// request.
const UNKNOWN_KEY_RELOAD: Duration = Duration::from_secs(10);

/// The id of a deployment's first key; rotation adds the next.
const FIRST_KEY_ID: u8 = 1;

/// The signing keys, read at a cold start and again every [`KEY_REFRESH`].
pub struct Authenticator {
    store: Store,
    keys: Mutex<Option<Loaded>>,
    /// When a token naming an unknown key last made this function read.
    unknown_key_read: Mutex<Option<Instant>>,
}

/// Keys as read, and when.
#[derive(Clone)]
struct Loaded {
    ring: Arc<KeyRing>,
    at: Instant,
}

impl Authenticator {
    pub fn new(store: Store) -> Self {
        Authenticator {
            store,
            keys: Mutex::new(None),
            unknown_key_read: Mutex::new(None),
        }
    }

    /// Reads the keys ahead of the first request (a function's cold start).
    /// A failure is only logged: the first request tries again.
    pub async fn warm_up(&self) {
        if let Err(e) = self.ring().await {
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
        let Some(mut ring) = self.ring().await? else {
            return Err(ApiError::Unauthorized);
        };
        // A key newer than this function's read: look again, now and then.
        if ring.key(token.key_id()).is_none() && self.may_read_for_unknown_key() {
            if let Some(fresh) = self.reload().await? {
                ring = fresh;
            }
        }
        token
            .verify_with(&ring, Timestamp::now().unix_seconds())
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
    /// (epoch seconds), signed with the current key.
    pub async fn issue_kind(
        &self,
        kind: TokenKind,
        username: &Username,
        expires_at: i64,
    ) -> Result<VerifiedToken, ApiError> {
        let ring = match self.ring().await? {
            Some(ring) => ring,
            None => {
                let fresh = SigningKey::generate(FIRST_KEY_ID).map_err(ApiError::internal)?;
                let stored = Arc::new(self.store.create_signing_key(fresh).await?);
                self.keep(stored.clone());
                stored
            }
        };
        AuthToken::issue_kind(kind, username, expires_at, ring.current())
            .map_err(ApiError::internal)
    }

    /// The keys, read again once they are [`KEY_REFRESH`] old; read until
    /// found, so a function that started before the first login still sees
    /// the key that login makes. A failed refresh keeps the keys it had.
    async fn ring(&self) -> Result<Option<Arc<KeyRing>>, ApiError> {
        let held = self.held();
        match held {
            Some(loaded) if loaded.at.elapsed() < KEY_REFRESH => Ok(Some(loaded.ring)),
            Some(loaded) => match self.reload().await {
                Ok(Some(ring)) => Ok(Some(ring)),
                Ok(None) => Ok(Some(loaded.ring)),
                Err(e) => {
                    tracing::warn!(error = %e, "the token-signing keys could not be read again");
                    Ok(Some(loaded.ring))
                }
            },
            None => self.reload().await,
        }
    }

    async fn reload(&self) -> Result<Option<Arc<KeyRing>>, ApiError> {
        let Some(ring) = self.store.signing_keys().await? else {
            return Ok(None);
        };
        let ring = Arc::new(ring);
        self.keep(ring.clone());
        Ok(Some(ring))
    }

    fn held(&self) -> Option<Loaded> {
        self.keys.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn keep(&self, ring: Arc<KeyRing>) {
        *self.keys.lock().unwrap_or_else(|e| e.into_inner()) = Some(Loaded {
            ring,
            at: Instant::now(),
        });
    }

    /// Whether a token naming an unknown key may make this function read
    /// the keys now; if so, the read is counted from now.
    fn may_read_for_unknown_key(&self) -> bool {
        let mut last = self
            .unknown_key_read
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|at| at.elapsed() < UNKNOWN_KEY_RELOAD) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }
}
