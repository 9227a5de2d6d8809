//! The token-signing key, one item in the users table under a name no
//! username can take (usernames have no `~`).
//!
//! It lives beside the accounts rather than in a secrets service: every
//! function that checks tokens reads that table anyway, so loading the key
//! at a cold start costs one `GetItem` on the connection the first request
//! then reuses, and no extra SDK in any binary.

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};

use super::{n, number_of, s, storage_error, Store};
use crate::clock::Timestamp;
use crate::domain::SigningKey;
use crate::error::ApiError;

/// The key item's partition key: not a valid username, so never an account.
pub const SIGNING_KEY_ITEM: &str = "~token-signing-key";

impl Store {
    /// The stored signing key, if one was made yet.
    pub async fn signing_key(&self) -> Result<Option<SigningKey>, ApiError> {
        self.item_by_username(&self.tables.users, SIGNING_KEY_ITEM, None)
            .await?
            .as_ref()
            .map(key_of)
            .transpose()
    }

    /// Stores `key` unless a key exists; returns the one that is stored, so
    /// logins racing on a new deployment all sign with the same key.
    pub async fn create_signing_key(&self, key: SigningKey) -> Result<SigningKey, ApiError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.tables.users)
            .item("username", s(SIGNING_KEY_ITEM))
            .item("key_id", n(key.id()))
            .item("secret", AttributeValue::B(Blob::new(key.expose())))
            .item("created_at", s(Timestamp::now().iso8601()))
            .condition_expression("attribute_not_exists(username)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(key),
            Err(err) => match err.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(e)) => match e.item() {
                    Some(stored) => key_of(stored),
                    None => Err(ApiError::internal(
                        "a key put was refused but none came back",
                    )),
                },
                _ => Err(storage_error(err)),
            },
        }
    }
}

fn key_of(
    item: &std::collections::HashMap<String, AttributeValue>,
) -> Result<SigningKey, ApiError> {
    let id = u8::try_from(number_of(item, "key_id")?)
        .map_err(|_| ApiError::internal("the signing key's id is out of range"))?;
    item.get("secret")
        .and_then(|v| v.as_b().ok())
        .and_then(|secret| SigningKey::from_parts(id, secret.as_ref()))
        .ok_or_else(|| ApiError::internal("the stored signing key is not 32 bytes"))
}
