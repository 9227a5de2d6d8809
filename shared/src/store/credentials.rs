//! The credentials table: `username` -> argon2id hash. Only register and
//! login may touch it (IAM says so, and a test holds IAM to the code), so no
//! other function can read a password hash, whatever it is made to do.

use aws_sdk_dynamodb::types::{CancellationReason, Put, TransactWriteItem};

use super::retry::Deadline;
use super::transact::condition_failed;
use super::{s, storage_error, string_of, Store};
use crate::clock::Instant;
use crate::domain::Username;
use crate::error::ApiError;

/// What login needs of a user.
pub struct StoredCredentials {
    pub password_hash: String,
}

impl Store {
    /// Creates a user: the account with its initial grant, the grant's
    /// ledger entry and the credentials, in one transaction, unless the
    /// name is taken. First
    /// writer wins, however many register the same name at once.
    pub async fn create_user(
        &self,
        username: &Username,
        password_hash: String,
        initial_tokens: u32,
        now: Instant,
        deadline: Deadline,
    ) -> Result<(), ApiError> {
        let account = self.new_account(username, initial_tokens, now)?;
        let credentials = Put::builder()
            .table_name(&self.tables.credentials)
            .item("username", s(username.as_str()))
            .item("password_hash", s(password_hash))
            .item("created_at", s(now.iso8601()))
            .condition_expression("attribute_not_exists(username)")
            .build()
            .map_err(ApiError::internal)?;
        let grant = self.grant_entry(username, initial_tokens.into(), "registration", now)?;
        // The grant's ledger entry goes with the account it funds.
        let items = vec![
            TransactWriteItem::builder().put(account).build(),
            TransactWriteItem::builder().put(credentials).build(),
            TransactWriteItem::builder().put(grant).build(),
        ];
        self.transact(items, deadline, || (), registration_refused)
            .await
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
            .table_name(&self.tables.credentials)
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

// Positions in the registering transaction.
const GRANT: usize = 2;

/// A taken name is one refusal; a conflict (two registrations of one name
/// at once) is tried again, and then the first one's put refuses this one.
fn registration_refused(reasons: &[CancellationReason]) -> Option<Result<(), ApiError>> {
    // The grant entry's id is new to this request: taken, it means an
    // earlier send of this same registration went through.
    if condition_failed(reasons, GRANT) {
        return Some(Ok(()));
    }
    if reasons
        .iter()
        .any(|r| r.code() == Some("ConditionalCheckFailed"))
    {
        return Some(Err(ApiError::UsernameTaken));
    }
    None
}
