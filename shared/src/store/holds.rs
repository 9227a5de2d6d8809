//! Holds: what a chat with a paid model reserves before the model is
//! called, and settles or gives back after.
//!
//! A hold is one item in the chats table under the user's partition
//! (`ledger#hold#<uuid>`): the ledger entry of the reservation (`amount` is
//! minus what was held), with a `state` that goes from `open` to `settled`
//! or `released` exactly once, under the condition that it is still open.
//! Settling and releasing each write one more immutable entry (the chat
//! item, or `ledger#release#<uuid>`) in the same transaction, so for every
//! user the balance equals the sum of the ledger at every moment.
//!
//! While open, a hold also carries `open_shard` and `deadline`, the keys of
//! the sparse index `OpenHolds`: the sweeper finds holds past their
//! deadline there (a function that died between hold and settle) and gives
//! them back with the same "still open" condition, so a late settle and the
//! sweeper can never both apply.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use uuid::Uuid;

use super::chats::{marker_id, marker_of, refusal_of, replay_of, MARKER_DONE, MARKER_PENDING};
use super::rate::rate_limited;
use super::transact::condition_failed;
use super::{n, number_of, s, sha256_hex, signed, storage_error, string_of, Store};
use crate::clock::Timestamp;
use crate::deadline::Deadline;
use crate::domain::{ChatMessage, IdempotencyKey, Username, VerifiedToken};
use crate::error::ApiError;
use crate::store::{ChatRecord, SavedChat};

/// The sparse index of open holds, on the chats table.
pub const OPEN_HOLDS_INDEX: &str = "OpenHolds";
/// Open holds spread over this many index partitions, so no one partition
/// takes every hold's writes; the sweeper reads each.
pub const OPEN_HOLD_SHARDS: u8 = 8;

const HOLD_PREFIX: &str = "ledger#hold#";
const RELEASE_PREFIX: &str = "ledger#release#";

/// A hold taken: what the settle or the release must name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hold {
    pub username: Username,
    /// The hold item's sort key, `ledger#hold#<uuid>`.
    pub hold_id: String,
    pub amount: u64,
    /// The idempotency marker the hold took, if the chat had a key.
    pub marker_id: Option<String>,
}

/// A hold to take: for which message, how much, under which key, and
/// from when until when.
pub struct HoldRequest<'a> {
    pub message: &'a ChatMessage,
    pub amount: u64,
    pub key: Option<&'a IdempotencyKey>,
    pub taken: Timestamp,
    /// When the sweeper may give it back.
    pub expires: Timestamp,
}

/// What taking a hold came to.
#[derive(Debug, PartialEq, Eq)]
pub enum HoldOutcome {
    Held(Hold),
    /// The key was answered before: its reply, and no hold.
    Replayed(SavedChat),
}

/// Why a hold is given back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReleaseReason {
    /// The model failed or timed out: nothing was produced to charge for.
    ModelFailed,
    /// Its deadline passed without a settle: the function died.
    Expired,
    /// The settle failed (or its outcome is unknown): given back at once
    /// if it is still open, rather than left to the sweeper.
    SettleFailed,
}

impl ReleaseReason {
    fn as_str(self) -> &'static str {
        match self {
            ReleaseReason::ModelFailed => "model_failed",
            ReleaseReason::Expired => "expired",
            ReleaseReason::SettleFailed => "settle_failed",
        }
    }
}

// Positions in the hold's transaction.
const HOLD_ACCOUNT: usize = 0;
const HOLD_ENTRY: usize = 1;
const HOLD_MARKER: usize = 2;

impl Store {
    /// Takes `amount` from the balance into a hold, if the session is live
    /// and the balance covers it, in one transaction: the account's update,
    /// the hold item, and with a key a pending marker, which makes a
    /// concurrent retry wait (409) and a later one replay, without a hold.
    pub async fn take_hold(
        &self,
        token: &VerifiedToken,
        request: &HoldRequest<'_>,
        deadline: Deadline,
    ) -> Result<HoldOutcome, ApiError> {
        let HoldRequest {
            message,
            amount,
            key,
            taken: now,
            expires,
        } = *request;
        let user = token.username().as_str();
        let hold_uuid = Uuid::now_v7();
        let hold_id = format!("{HOLD_PREFIX}{hold_uuid}");
        let held = signed(amount)?;
        let take = self.charge(token, amount, now)?;
        let mut hold = Put::builder()
            .table_name(&self.tables.chats)
            .item("username", s(user))
            .item("chat_id", s(&hold_id))
            .item("kind", s("hold"))
            .item("amount", n(-held))
            .item("state", s("open"))
            .item("open_shard", s(shard_of(&hold_uuid)))
            .item("deadline", n(expires.unix_seconds()))
            .item("created_at", s(now.iso8601()))
            .condition_expression("attribute_not_exists(chat_id)");
        let marker_id = key.map(marker_id);
        if let Some(marker_id) = &marker_id {
            hold = hold.item("marker_id", s(marker_id));
        }
        let mut items = vec![
            TransactWriteItem::builder().update(take).build(),
            TransactWriteItem::builder()
                .put(hold.build().map_err(ApiError::internal)?)
                .build(),
        ];
        if let Some(marker_id) = &marker_id {
            let marker = Put::builder()
                .table_name(&self.tables.chats)
                .item("username", s(user))
                .item("chat_id", s(marker_id))
                .item("state", s(MARKER_PENDING))
                .item("hold_ref", s(&hold_id))
                .item("request_hash", s(sha256_hex(message.as_str().as_bytes())))
                .item("created_at", s(now.iso8601()))
                .condition_expression("attribute_not_exists(chat_id)")
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build()
                .map_err(ApiError::internal)?;
            items.push(TransactWriteItem::builder().put(marker).build());
        }
        let keyed = marker_id.is_some();
        let counted = self.count_chat(user, now)?;
        let count = counted.as_ref().map(|_| items.len());
        items.extend(counted);
        let hold = Hold {
            username: token.username().clone(),
            hold_id,
            amount,
            marker_id,
        };
        let held = || HoldOutcome::Held(hold.clone());
        self.transact(items, deadline, held, |reasons| {
            // The hold's id is new to this request alone: if it is taken,
            // an earlier send of this same transaction went through.
            if condition_failed(reasons, HOLD_ENTRY) {
                return Some(Ok(held()));
            }
            // The key first: an answered retry is replayed even when the
            // balance could not pay for another chat.
            if keyed && condition_failed(reasons, HOLD_MARKER) {
                return Some(
                    marker_of(reasons, HOLD_MARKER)
                        .and_then(|marker| replay_of(marker, message))
                        .map(HoldOutcome::Replayed),
                );
            }
            if condition_failed(reasons, HOLD_ACCOUNT) {
                return Some(Err(refusal_of(reasons, HOLD_ACCOUNT, token, amount, now)));
            }
            if count.is_some_and(|at| condition_failed(reasons, at)) {
                return Some(Err(rate_limited(now)));
            }
            None
        })
        .await
    }

    /// Closes `hold` for the chat `chat` (whose cost is at most the hold):
    /// the cost stays taken, the rest goes back, the chat is saved with its
    /// usage and the key's marker answered, in one transaction. Refused
    /// (503) if the hold is no longer open: the sweeper gave it back.
    pub async fn settle(
        &self,
        hold: &Hold,
        chat: &ChatRecord<'_>,
        deadline: Deadline,
    ) -> Result<(), ApiError> {
        if self
            .close_hold(self.settle_items(hold, chat)?, deadline)
            .await?
        {
            return Ok(());
        }
        Err(ApiError::Unavailable(
            "the hold was given back before the chat settled".into(),
        ))
    }

    fn settle_items(
        &self,
        hold: &Hold,
        chat: &ChatRecord<'_>,
    ) -> Result<Vec<TransactWriteItem>, ApiError> {
        let user = hold.username.as_str();
        let refund = hold.amount.saturating_sub(chat.cost);
        let mut items = vec![
            self.close(hold, "settled")?,
            TransactWriteItem::builder()
                .put(chat.put(&self.tables.chats, user, signed(refund)?)?)
                .build(),
        ];
        if refund > 0 {
            items.push(
                TransactWriteItem::builder()
                    .update(self.credit(user, signed(refund)?)?)
                    .build(),
            );
        }
        if let Some(marker_id) = &hold.marker_id {
            let answer = Update::builder()
                .table_name(&self.tables.chats)
                .key("username", s(user))
                .key("chat_id", s(marker_id))
                .update_expression(
                    "SET #state = :done, chat_ref = :chat, #response = :response, created_at = :at",
                )
                .condition_expression("hold_ref = :hold")
                .expression_attribute_names("#state", "state")
                .expression_attribute_names("#response", "response")
                .expression_attribute_values(":done", s(MARKER_DONE))
                .expression_attribute_values(":chat", s(chat.chat_id.to_string()))
                .expression_attribute_values(":response", s(chat.response))
                .expression_attribute_values(":at", s(chat.created.iso8601()))
                .expression_attribute_values(":hold", s(&hold.hold_id))
                .build()
                .map_err(ApiError::internal)?;
            items.push(TransactWriteItem::builder().update(answer).build());
        }
        Ok(items)
    }

    /// Gives all of `hold` back: the hold closes as released and a release
    /// entry records the return, in one transaction; the key's marker goes,
    /// so the client may retry with it. `false` if the hold was no longer
    /// open: someone else closed it, and nothing was given back now.
    pub async fn release(
        &self,
        hold: &Hold,
        reason: ReleaseReason,
        deadline: Deadline,
    ) -> Result<bool, ApiError> {
        let user = hold.username.as_str();
        // An id of this call's own, so that finding it taken can only mean
        // this call's earlier send went through (a release by anyone else
        // shows as the hold being closed).
        let entry = Put::builder()
            .table_name(&self.tables.chats)
            .item("username", s(user))
            .item("chat_id", s(format!("{RELEASE_PREFIX}{}", Uuid::now_v7())))
            .item("kind", s("release"))
            .item("amount", n(hold.amount))
            .item("reason", s(reason.as_str()))
            .item("hold_ref", s(&hold.hold_id))
            .item("created_at", s(Timestamp::now().iso8601()))
            .condition_expression("attribute_not_exists(chat_id)")
            .build()
            .map_err(ApiError::internal)?;
        let mut items = vec![
            self.close(hold, "released")?,
            TransactWriteItem::builder().put(entry).build(),
            TransactWriteItem::builder()
                .update(self.credit(user, signed(hold.amount)?)?)
                .build(),
        ];
        if let Some(marker_id) = &hold.marker_id {
            let forget = Delete::builder()
                .table_name(&self.tables.chats)
                .key("username", s(user))
                .key("chat_id", s(marker_id))
                .condition_expression("hold_ref = :hold")
                .expression_attribute_values(":hold", s(&hold.hold_id))
                .build()
                .map_err(ApiError::internal)?;
            items.push(TransactWriteItem::builder().delete(forget).build());
        }
        self.close_hold(items, deadline).await
    }

    /// Up to `limit` open holds whose deadline passed before `now`, from
    /// every shard of the index.
    pub async fn expired_holds(&self, now: Timestamp, limit: usize) -> Result<Vec<Hold>, ApiError> {
        let mut found = Vec::new();
        for shard in 0..OPEN_HOLD_SHARDS {
            let mut start = None;
            loop {
                let page = self
                    .client
                    .query()
                    .table_name(&self.tables.chats)
                    .index_name(OPEN_HOLDS_INDEX)
                    .key_condition_expression("open_shard = :shard AND deadline < :now")
                    .expression_attribute_values(":shard", s(shard.to_string()))
                    .expression_attribute_values(":now", n(now.unix_seconds()))
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .map_err(storage_error)?;
                for item in page.items() {
                    // One unreadable item must not keep every other hold
                    // from being given back: it is logged and passed over.
                    match hold_of(item) {
                        Ok(hold) => found.push(hold),
                        Err(e) => tracing::error!(error = %e, "an open hold could not be read"),
                    }
                    if found.len() >= limit {
                        return Ok(found);
                    }
                }
                start = page.last_evaluated_key;
                if start.is_none() {
                    break;
                }
            }
        }
        Ok(found)
    }

    /// The update that closes a hold as `state`, if it is still open; it
    /// also leaves the index of open holds.
    fn close(&self, hold: &Hold, state: &str) -> Result<TransactWriteItem, ApiError> {
        let update = Update::builder()
            .table_name(&self.tables.chats)
            .key("username", s(hold.username.as_str()))
            .key("chat_id", s(&hold.hold_id))
            .update_expression("SET #state = :closed REMOVE open_shard")
            .condition_expression("#state = :open")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":closed", s(state))
            .expression_attribute_values(":open", s("open"))
            .build()
            .map_err(ApiError::internal)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// Sends a transaction whose item 0 closes a hold and whose item 1 is
    /// new to it; `false` if the hold had been closed by another.
    async fn close_hold(
        &self,
        items: Vec<TransactWriteItem>,
        deadline: Deadline,
    ) -> Result<bool, ApiError> {
        self.transact(
            items,
            deadline,
            || true,
            |reasons| {
                // Item 1 (the chat, or the release entry) is new to this
                // transaction alone: if it is there, an earlier send of this
                // same transaction committed after all.
                if condition_failed(reasons, 1) {
                    return Some(Ok(true));
                }
                // Otherwise a closed hold was closed by someone else (the
                // sweeper, or the chat racing it): this one must not apply.
                if condition_failed(reasons, 0) {
                    return Some(Ok(false));
                }
                None
            },
        )
        .await
    }
}

/// The index partition of a hold: spread by its id's random bits.
fn shard_of(hold: &Uuid) -> String {
    (hold.as_bytes()[15] % OPEN_HOLD_SHARDS).to_string()
}

fn hold_of(item: &HashMap<String, AttributeValue>) -> Result<Hold, ApiError> {
    let username = Username::from_stored(string_of(item, "username")?)
        .map_err(|e| ApiError::internal(format!("a hold's username: {e}")))?;
    Ok(Hold {
        username,
        hold_id: string_of(item, "chat_id")?.to_owned(),
        amount: number_of(item, "amount")?.unsigned_abs(),
        marker_id: item.get("marker_id").and_then(|v| v.as_s().ok()).cloned(),
    })
}
