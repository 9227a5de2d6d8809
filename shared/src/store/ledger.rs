//! The ledger: every movement of a balance as an immutable item in the
//! user's partition of the chats table, each with a signed `amount`,
//! written in the same transaction as the movement:
//!
//! - `ledger#grant#<id>`: tokens given or taken back (registration under
//!   a UUIDv7, an operator's grant under its operation id);
//! - a chat item (its UUIDv7 id): a flat charge (`-cost`), or a settle
//!   (what the hold gives back);
//! - `ledger#hold#<uuid>`: a hold (`-held`);
//! - `ledger#release#<uuid>`: a hold given back whole (`+held`).
//!
//! Invariant, for every user at every moment: balance = sum of amounts.
//! The operator's audit (`audit`) checks it.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, Put, ReturnValuesOnConditionCheckFailure};

use super::{n, number_of, s, storage_error, Item, Store, CHAT_ID, CREATED_AT, USERNAME};
use crate::clock::Timestamp;
use crate::domain::Username;
use crate::error::ApiError;

const GRANT_PREFIX: &str = "ledger#grant#";

/// Every ledger entry's signed amount: what it moved. Only ledger entries
/// carry one (a chat's item is one; a marker is not).
pub(super) const AMOUNT: &str = "amount";
/// What kind of entry an item is beside a chat: `grant`, `hold`,
/// `release`, `api_key` (key details, no amount).
pub(super) const KIND: &str = "kind";

/// The amount `item` moved, `None` if it is no ledger entry.
pub(super) fn amount_of(item: &Item) -> Result<Option<i64>, ApiError> {
    if !item.contains_key(AMOUNT) {
        return Ok(None);
    }
    number_of(item, AMOUNT).map(Some)
}

/// `item`'s kind, if it has one.
pub(super) fn kind_of(item: &Item) -> Option<&str> {
    item.get(KIND)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

impl Store {
    /// The ledger entry `ledger#grant#<op_id>` of a grant of `amount`
    /// tokens (negative: taken back) to `username`, for the transaction
    /// that moves them. The id is the grant's: a second entry under it is
    /// refused, with the first one returned so a retry can be told apart
    /// from a reuse.
    pub(super) fn grant_entry(
        &self,
        username: &Username,
        amount: i64,
        reason: &str,
        op_id: &str,
        now: Timestamp,
    ) -> Result<Put, ApiError> {
        Put::builder()
            .table_name(&self.tables.chats)
            .item(USERNAME, s(username.as_str()))
            .item(CHAT_ID, s(format!("{GRANT_PREFIX}{op_id}")))
            .item(KIND, s("grant"))
            .item(AMOUNT, n(amount))
            .item("reason", s(reason))
            .item(CREATED_AT, s(now.iso8601()))
            .condition_expression("attribute_not_exists(chat_id)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(ApiError::internal)
    }

    /// Every item of `username`'s partition of the chats table (chats,
    /// ledger entries, markers) with `projection`, read strongly consistent
    /// a page at a time; `#state` in it stands for `state`, a reserved word.
    pub(super) async fn partition(
        &self,
        username: &Username,
        projection: &str,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, ApiError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.tables.chats)
                .key_condition_expression("username = :user")
                .expression_attribute_values(":user", s(username.as_str()))
                .projection_expression(projection)
                .consistent_read(true)
                .set_exclusive_start_key(start);
            // DynamoDB refuses a name the expression does not use.
            if projection.contains("#state") {
                query = query.expression_attribute_names("#state", "state");
            }
            let page = query.send().await.map_err(storage_error)?;
            items.extend(page.items().iter().cloned());
            start = page.last_evaluated_key;
            if start.is_none() {
                return Ok(items);
            }
        }
    }
}
