//! Invite codes, for `REGISTRATION=invite`: made by the operator
//! (`chat-ops invite`), each good for one registration, kept only as a
//! SHA-256 in the credentials table (`~invite#<hash>`: no username can
//! start with `~`), and spent in the registering transaction itself, so
//! two registrations can never share one code.

use aws_sdk_dynamodb::types::{Delete, TransactWriteItem};

use super::sha256_hex;
use super::{s, Store, USERNAME};
use crate::error::ApiError;

const INVITE_PREFIX: &str = "~invite#";
/// What a code starts with, so people tell it from a token.
pub const INVITE_CODE_PREFIX: &str = "inv_";
/// 128 bits from the OS CSPRNG: unguessable, so a fast hash is safe.
#[cfg(feature = "operator")]
const CODE_BYTES: usize = 16;

fn item_key(code: &str) -> String {
    format!("{INVITE_PREFIX}{}", sha256_hex(code.as_bytes()))
}

impl Store {
    /// A new single-use invite code, stored as its hash; the code itself is
    /// returned once, for the operator to hand out.
    #[cfg(feature = "operator")]
    pub async fn create_invite(
        &self,
        note: &str,
        now: crate::clock::Timestamp,
    ) -> Result<String, ApiError> {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;

        let mut secret = [0u8; CODE_BYTES];
        getrandom::fill(&mut secret).map_err(ApiError::internal)?;
        let code = format!("{INVITE_CODE_PREFIX}{}", URL_SAFE_NO_PAD.encode(secret));
        self.client
            .put_item()
            .table_name(&self.tables.credentials)
            .item(USERNAME, s(item_key(&code)))
            .item("note", s(note))
            .item(super::CREATED_AT, s(now.iso8601()))
            .condition_expression("attribute_not_exists(username)")
            .send()
            .await
            .map_err(super::storage_error)?;
        Ok(code)
    }

    /// The delete that spends `code` in a registering transaction: it
    /// fails unless the code exists and is unspent.
    pub(super) fn spend_invite(&self, code: &str) -> Result<TransactWriteItem, ApiError> {
        let delete = Delete::builder()
            .table_name(&self.tables.credentials)
            .key(USERNAME, s(item_key(code)))
            .condition_expression("attribute_exists(username)")
            .build()
            .map_err(ApiError::internal)?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }
}
