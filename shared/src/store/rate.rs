//! The per-user chat rate: at most `CHATS_PER_MINUTE` chats a user may
//! start in one clock minute, counted in DynamoDB so every function
//! instance sees the same count.
//!
//! The count is one item per user and minute in the chats table
//! (`rate#<minute>`, after the ledger entries, so neither history nor the
//! ledger reads it; no `amount`), updated in the chat's own transaction
//! under the condition that it is below the cap. So a chat the cap refuses
//! changes nothing, a chat the balance refuses is not counted, and the
//! happy path keeps its one round trip, at the price of one more item in
//! the transaction (2 write units). The item expires with DynamoDB's TTL.

use aws_sdk_dynamodb::types::{TransactWriteItem, Update};

use super::{n, s, Store};
use crate::clock::Timestamp;
use crate::error::ApiError;

const RATE_PREFIX: &str = "rate#";

/// How long a minute's count is kept after its minute: long enough that
/// DynamoDB's TTL, which may lag, never matters to the count.
const KEEP_SECONDS: i64 = 3600;

impl Store {
    /// The count's update for a chat of `user` at `now`, if a cap is set.
    pub(super) fn count_chat(
        &self,
        user: &str,
        now: Timestamp,
    ) -> Result<Option<TransactWriteItem>, ApiError> {
        if self.chats_per_minute == 0 {
            return Ok(None);
        }
        let minute = now.unix_seconds().div_euclid(60);
        let update = Update::builder()
            .table_name(&self.tables.chats)
            .key("username", s(user))
            .key("chat_id", s(format!("{RATE_PREFIX}{minute}")))
            .update_expression("ADD chats :one SET #ttl = :expires")
            // `ttl`, the chats table's TTL attribute: no other item has it.
            .expression_attribute_names("#ttl", "ttl")
            .condition_expression("attribute_not_exists(chats) OR chats < :cap")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":cap", n(self.chats_per_minute))
            .expression_attribute_values(":expires", n((minute + 1) * 60 + KEEP_SECONDS))
            .build()
            .map_err(ApiError::internal)?;
        Ok(Some(TransactWriteItem::builder().update(update).build()))
    }
}

/// The refusal of a chat over the cap: retry when the minute turns.
pub(super) fn rate_limited(now: Timestamp) -> ApiError {
    let into_minute = now.unix_seconds().rem_euclid(60);
    ApiError::RateLimited {
        retry_after: (60 - into_minute) as u64,
    }
}
