//! The users table: `username` -> password hash and token balance.

use aws_sdk_dynamodb::types::AttributeValue;

use super::{n, number_of, refused_as, s, storage_error, string_of, Store};
use crate::clock::Instant;
use crate::domain::Username;
use crate::error::ApiError;

/// What login needs of a user.
pub struct StoredCredentials {
    pub password_hash: String,
}

impl Store {
    /// Creates a user with the initial grant, unless the name is taken.
    pub async fn create_user(
        &self,
        username: &Username,
        password_hash: String,
        initial_tokens: u32,
        now: Instant,
    ) -> Result<(), ApiError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.tables.users)
            .item("username", s(username.as_str()))
            .item("user_id", s(uuid::Uuid::now_v7().to_string()))
            .item("password_hash", s(password_hash))
            .item("tokens", n(initial_tokens))
            .item("created_at", s(now.iso8601()))
            // First writer wins, however many register the same name at once.
            .condition_expression("attribute_not_exists(username)")
            .send()
            .await;
        refused_as(result, ApiError::UsernameTaken).map(|_| ())
    }

    /// The stored password hash, read strongly consistent so a login right
    /// after registering always finds the user.
    pub async fn find_credentials(
        &self,
        username: &Username,
    ) -> Result<Option<StoredCredentials>, ApiError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.tables.users)
            .key("username", s(username.as_str()))
            .projection_expression("password_hash")
            .consistent_read(true)
            .send()
            .await
            .map_err(storage_error)?;
        output
            .item()
            .map(|item| {
                Ok(StoredCredentials {
                    password_hash: string_of(item, "password_hash")?.to_owned(),
                })
            })
            .transpose()
    }
}

/// The balance in a user item.
pub(crate) fn tokens_of(
    item: &std::collections::HashMap<String, AttributeValue>,
) -> Result<i64, ApiError> {
    number_of(item, "tokens")
}
