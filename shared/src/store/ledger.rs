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
//! [`Store::audit`] checks it.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, Put, ReturnValuesOnConditionCheckFailure};

use super::{n, number_of, s, storage_error, Store};
use crate::clock::Timestamp;
use crate::domain::Username;
use crate::error::ApiError;

const GRANT_PREFIX: &str = "ledger#grant#";

/// One user's balance beside the sum of their ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Audit {
    pub username: Username,
    pub balance: i64,
    pub ledger_sum: i64,
    pub entries: usize,
    /// Holds not yet settled or released (their amounts are in the sum).
    pub open_holds: usize,
}

impl Audit {
    pub fn balances(&self) -> bool {
        self.balance == self.ledger_sum
    }
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
            .item("username", s(username.as_str()))
            .item("chat_id", s(format!("{GRANT_PREFIX}{op_id}")))
            .item("kind", s("grant"))
            .item("amount", n(amount))
            .item("reason", s(reason))
            .item("created_at", s(now.iso8601()))
            .condition_expression("attribute_not_exists(chat_id)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(ApiError::internal)
    }

    /// `username`'s balance and ledger, read strongly consistent. `None`
    /// if there is no such account. The balance is read before and after
    /// the ledger, and the reading starts again if it moved in between, so
    /// a user chatting meanwhile cannot make a sound ledger look unsound.
    pub async fn audit(&self, username: &Username) -> Result<Option<Audit>, ApiError> {
        for _ in 0..5 {
            let Some((balance, version)) = self.stored_balance(username).await? else {
                return Ok(None);
            };
            let (ledger_sum, entries, open_holds) = self.ledger_sum(username).await?;
            // The version, not the balance: a hold and its release leave
            // the balance as it was, but not the ledger a read crossed.
            if self.stored_balance(username).await? == Some((balance, version)) {
                return Ok(Some(Audit {
                    username: username.clone(),
                    balance,
                    ledger_sum,
                    entries,
                    open_holds,
                }));
            }
        }
        Err(ApiError::Unavailable(
            "the balance kept moving while its ledger was read".into(),
        ))
    }

    /// The sum of `username`'s ledger amounts, how many entries, and how
    /// many holds are open.
    pub(super) async fn ledger_sum(
        &self,
        username: &Username,
    ) -> Result<(i64, usize, usize), ApiError> {
        let (mut sum, mut entries, mut open) = (0i64, 0usize, 0usize);
        for item in self.partition(username, "amount, #state, kind").await? {
            // Idempotency markers carry no amount: they move nothing.
            if item.contains_key("amount") {
                sum = sum
                    .checked_add(number_of(&item, "amount")?)
                    .ok_or_else(|| ApiError::internal("a ledger sum overflowed"))?;
                entries += 1;
            }
            let is = |name: &str, value: &str| {
                item.get(name)
                    .and_then(|v| v.as_s().ok())
                    .map(String::as_str)
                    == Some(value)
            };
            if is("kind", "hold") && is("state", "open") {
                open += 1;
            }
        }
        Ok((sum, entries, open))
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
