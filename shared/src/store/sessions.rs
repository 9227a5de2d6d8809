//! The sessions table: SHA-256 of a token -> its user and expiry.
//!
//! DynamoDB's TTL deletes expired items late (up to days), so every read and
//! every conditional check here compares `expires_at` with the clock itself.

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_get_items::TransactGetItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Get, TransactGetItem};

use super::retry::{backoff, worth_retrying, MAX_ATTEMPTS};
use super::users::tokens_of;
use super::{n, number_of, refused_as, s, storage_error, string_of, Store};
use crate::clock::Instant;
use crate::domain::AuthToken;
use crate::error::ApiError;

pub(super) type Item = std::collections::HashMap<String, AttributeValue>;

impl Store {
    /// Stores a new session for `token`, valid until `expires`.
    pub async fn create_session(
        &self,
        token: &AuthToken,
        now: Instant,
        expires: Instant,
    ) -> Result<(), ApiError> {
        self.client
            .put_item()
            .table_name(&self.tables.sessions)
            .item("token_hash", s(token.hash().as_str()))
            .item("username", s(token.username().as_str()))
            .item("created_at", s(now.iso8601()))
            .item("expires_at", n(expires.unix_seconds()))
            // 256 random bits never collide; the condition makes sure that a
            // put can only ever create a session, never replace one.
            .condition_expression("attribute_not_exists(token_hash)")
            .send()
            .await
            .map_err(storage_error)?;
        Ok(())
    }

    /// Deletes the session of `token`, if it is one of the user the token
    /// names; otherwise refuses, as any use of a bad token is refused.
    pub async fn end_session(&self, token: &AuthToken) -> Result<(), ApiError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.tables.sessions)
            .key("token_hash", s(token.hash().as_str()))
            // Without it a delete of a missing item succeeds, and a forged
            // token would "log out" happily.
            .condition_expression("username = :user")
            .expression_attribute_values(":user", s(token.username().as_str()))
            .send()
            .await;
        refused_as(result, ApiError::Unauthorized).map(|_| ())
    }

    /// The caller's balance, in one round trip: the session and the user
    /// item are read together, and the session is checked here.
    pub async fn balance(&self, token: &AuthToken, now: Instant) -> Result<i64, ApiError> {
        self.account(token, None, now)
            .await
            .map(|(tokens, _)| tokens)
    }

    /// The session, the user's balance and, when given, one more item,
    /// read together; the session is checked here.
    pub(super) async fn account(
        &self,
        token: &AuthToken,
        also: Option<Get>,
        now: Instant,
    ) -> Result<(i64, Option<Item>), ApiError> {
        let user = token.username().as_str();
        let session = Get::builder()
            .table_name(&self.tables.sessions)
            .key("token_hash", s(token.hash().as_str()))
            .projection_expression("username, expires_at")
            .build()
            .map_err(ApiError::internal)?;
        let account = Get::builder()
            .table_name(&self.tables.users)
            .key("username", s(user))
            .projection_expression("tokens")
            .build()
            .map_err(ApiError::internal)?;
        let mut reads = vec![
            TransactGetItem::builder().get(session).build(),
            TransactGetItem::builder().get(account).build(),
        ];
        reads.extend(also.map(|get| TransactGetItem::builder().get(get).build()));
        let mut attempt = 0;
        let output = loop {
            let result = self
                .client
                .transact_get_items()
                .set_transact_items(Some(reads.clone()))
                .send()
                .await;
            match result {
                Ok(output) => break output,
                // A read collides with a concurrent chat's write on the user
                // item (the write finishes in milliseconds), or is throttled.
                Err(err) if cancelled_retryably(&err) && attempt + 1 < MAX_ATTEMPTS => {
                    attempt += 1;
                    backoff(attempt).await;
                }
                Err(err) => return Err(storage_error(err)),
            }
        };
        let items: Vec<_> = output.responses().iter().map(|r| r.item()).collect();
        Self::require_live(items.first().copied().flatten(), token, now)?;
        let Some(Some(account)) = items.get(1) else {
            return Err(ApiError::Unauthorized);
        };
        let also = items.get(2).copied().flatten().cloned();
        Ok((tokens_of(account)?, also))
    }

    /// A session item, as read with `username, expires_at`, that lets
    /// `token` in: it exists, names the user the token names, and has not
    /// expired. A stored item without those attributes is our bug (500).
    pub(super) fn require_live(
        session: Option<&Item>,
        token: &AuthToken,
        now: Instant,
    ) -> Result<(), ApiError> {
        let Some(session) = session else {
            return Err(ApiError::Unauthorized);
        };
        let owner = string_of(session, "username")?;
        let expires_at = number_of(session, "expires_at")?;
        if owner != token.username().as_str() || expires_at <= now.unix_seconds() {
            return Err(ApiError::Unauthorized);
        }
        Ok(())
    }

    /// The first step of every charged request: the token's session exists,
    /// belongs to the user the token names, and has not expired.
    pub(crate) fn live_session_check(
        &self,
        token: &AuthToken,
        now: Instant,
    ) -> Result<ConditionCheck, ApiError> {
        ConditionCheck::builder()
            .table_name(&self.tables.sessions)
            .key("token_hash", s(token.hash().as_str()))
            .condition_expression("username = :user AND expires_at > :now")
            .expression_attribute_values(":user", s(token.username().as_str()))
            .expression_attribute_values(":now", n(now.unix_seconds()))
            .build()
            .map_err(ApiError::internal)
    }
}

/// A read cancelled for a reason a later try does not share.
fn cancelled_retryably<R>(err: &SdkError<TransactGetItemsError, R>) -> bool {
    match err.as_service_error() {
        Some(TransactGetItemsError::TransactionCanceledException(cancelled)) => {
            worth_retrying(cancelled.cancellation_reasons())
        }
        _ => false,
    }
}
