//! Holds: what a chat with a paid model reserves before the model is
//! called, and settles or gives back after.
//!
//! A hold is one item in the chats table under the user's partition
//! (`ledger#hold#<uuid>`): the ledger entry of the reservation (`amount` is
//! minus what was held), with a `state` that goes from `open` to `settled`
//! or `released` exactly once, under the condition that it is still open.
//! Settling and releasing each write one more immutable entry (the chat
//! item, `ledger#settle#<uuid>` or `ledger#release#<uuid>`) in the same
//! transaction, so for every user the balance equals the sum of the ledger
//! at every moment. The account counts its open holds (`open_calls`) in the
//! same writes, which is what the per-user cap on simultaneous model calls
//! reads.
//!
//! While open, a hold also carries `open_shard` and `deadline`, the keys of
//! the sparse index `OpenHolds`: the sweeper finds holds past their
//! deadline there (a function that died, or a settle that could not commit
//! and left what is owed on the hold) and settles them with the same
//! "still open" condition, so a late settle and the sweeper can never both
//! apply.

use crate::credits::Credits;
use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use uuid::Uuid;

use super::accounts::Limits;
use super::chats::{refusal_of, reshape, shape_contended, Attempted, Shape, SHAPE_TRIES};
use super::ledger::{kind_of, AMOUNT, KIND};
use super::markers::{self, marker_id, marker_of, replay_of};
use super::transact::condition_failed;
use super::{
    n, number_of, s, signed, storage_error, string_of, unless_refused, Item, Store, CHAT_ID,
    CREATED_AT, USERNAME,
};
use crate::clock::Timestamp;
use crate::deadline::Deadline;
use crate::domain::{ChatMessage, KeyedRequest, TokenKind, Username, VerifiedToken};
use crate::error::ApiError;
use crate::pricing::{Pricing, Usage};
use crate::responder::Finish;
use crate::store::{ChatRecord, SavedChat};

/// A hold entry's state: `open` until its settle, release or sweep closes
/// it (a reserved word in expressions, so `#state` there).
const STATE: &str = "state";
const OPEN: &str = "open";

/// Whether `item` is a hold entry still open.
pub(super) fn is_open(item: &Item) -> bool {
    kind_of(item) == Some("hold") && string_of(item, STATE).is_ok_and(|state| state == OPEN)
}

/// The sparse index of open holds, on the chats table.
pub const OPEN_HOLDS_INDEX: &str = "OpenHolds";
/// Open holds spread over this many index partitions, so no one partition
/// takes every hold's writes; the sweeper reads each.
pub const OPEN_HOLD_SHARDS: u8 = 8;

const HOLD_PREFIX: &str = "ledger#hold#";
const RELEASE_PREFIX: &str = "ledger#release#";
const SETTLE_PREFIX: &str = "ledger#settle#";

/// A hold taken: what the settle or the release must name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hold {
    pub username: Username,
    /// The hold item's sort key, `ledger#hold#<uuid>`.
    pub hold_id: String,
    pub amount: Credits,
    /// The idempotency marker the hold took, if the chat had a key.
    pub marker_id: Option<String>,
    /// Whether the account counts this hold among its open calls: every
    /// hold taken since the cap exists; its close counts it out again.
    pub counted: bool,
    /// The API key it was taken with, whose budget its close gives back to.
    pub key: Option<HeldKey>,
    /// The catalog id of the model called, kept on its closing entries.
    pub model: String,
}

/// The API key a hold was taken with, and when: its close gives back to
/// the key's budget only while the key still counts in that instant's
/// window (see `key_limits`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldKey {
    pub id: String,
    pub taken: Timestamp,
}

/// A hold to take: how much, for which model at which prices, under which
/// key, and from when until when.
pub struct HoldRequest<'a> {
    pub amount: Credits,
    /// The chat's message, kept on the hold: should its function die, the
    /// sweeper saves the chat it charges with it.
    pub message: &'a ChatMessage,
    /// The catalog id of the model called, recorded with the hold.
    pub model: &'a str,
    /// The prices the call is charged at, recorded with the hold: a price
    /// change while it is open does not reach it.
    pub pricing: Pricing,
    pub key: Option<&'a KeyedRequest>,
    pub taken: Timestamp,
    /// When the sweeper may close it.
    pub expires: Timestamp,
}

/// What taking a hold came to.
#[derive(Debug, PartialEq, Eq)]
pub enum HoldOutcome {
    Held(Hold),
    /// The key was answered before: its reply, and no hold.
    Replayed(SavedChat),
}

/// Why a hold is given back. Only ever before the model produced
/// anything: after that, a hold is settled, by the chat or by the sweeper.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReleaseReason {
    /// The model refused the call (throttled, invalid, forbidden) and
    /// processed nothing.
    ModelRefused,
    /// The hold's own transaction answered with an error: if it committed
    /// after all, it is given back before any model is called.
    HoldUnconfirmed,
}

impl ReleaseReason {
    fn as_str(self) -> &'static str {
        match self {
            ReleaseReason::ModelRefused => "model_refused",
            ReleaseReason::HoldUnconfirmed => "hold_unconfirmed",
        }
    }
}

/// What the sweeper did with one expired hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SweptHold {
    /// Given back: its model refused the call, and the release that should
    /// have followed could not commit.
    Released,
    /// Settled at what its chat recorded it owes (a settle that could not
    /// commit): the chat saved, the rest given back.
    SettledOwed { cost: Credits },
    /// Settled in full, with nothing recorded: its function died with the
    /// model's work unpriced, and the hold is the bound of that work.
    SettledAtBound { cost: Credits },
    /// Closed by someone else between the index and now.
    ClosedMeanwhile,
}

// Positions in the hold's transaction.
const HOLD_ACCOUNT: usize = 0;
const HOLD_ENTRY: usize = 1;
const HOLD_MARKER: usize = 2;

// The account's position in a hold's close: after the hold and its entry.
const CLOSE_ACCOUNT: usize = 2;

/// The largest query page per shard when the sweeper reads the index:
/// every shard gets a page in turn, so one busy shard cannot starve the
/// others.
const SWEEP_PAGE: usize = 25;

impl Store {
    /// Takes `amount` from the balance into a hold, if the session is live,
    /// the balance covers it and the user has fewer open calls than the
    /// cap, in one transaction: the account's update, the hold item, and
    /// with a key a pending marker, which makes a concurrent retry wait
    /// (409) and a later one replay, without a hold.
    pub async fn take_hold(
        &self,
        token: &VerifiedToken,
        request: &HoldRequest<'_>,
        deadline: Deadline,
    ) -> Result<HoldOutcome, ApiError> {
        let hold = self.new_hold(token, request);
        self.take(token, request, &hold, deadline).await
    }

    /// The hold a request will take, with an id of its own, so a caller can
    /// give it back should taking it end in doubt.
    pub fn new_hold(&self, token: &VerifiedToken, request: &HoldRequest<'_>) -> Hold {
        Hold {
            username: token.username().clone(),
            hold_id: format!("{HOLD_PREFIX}{}", Uuid::now_v7()),
            amount: request.amount,
            marker_id: request.key.map(|keyed| marker_id(&keyed.key)),
            counted: true,
            key: (token.kind() == TokenKind::ApiKey).then(|| HeldKey {
                id: token.session_id().as_str().to_owned(),
                taken: request.taken,
            }),
            model: request.model.to_owned(),
        }
    }

    /// Takes `hold` (from [`Store::new_hold`]) as [`Store::take_hold`] does.
    pub async fn take(
        &self,
        token: &VerifiedToken,
        request: &HoldRequest<'_>,
        hold: &Hold,
        deadline: Deadline,
    ) -> Result<HoldOutcome, ApiError> {
        let mut shape = Shape::GUESS;
        for _ in 0..SHAPE_TRIES {
            match self.take_in(token, request, hold, &shape, deadline).await? {
                Attempted::Done(outcome) => return Ok(outcome),
                Attempted::Again(next) => shape = next,
            }
        }
        Err(shape_contended())
    }

    /// [`Store::take`] with its account update written as `shape` says.
    async fn take_in(
        &self,
        token: &VerifiedToken,
        request: &HoldRequest<'_>,
        hold: &Hold,
        shape: &Shape,
        deadline: Deadline,
    ) -> Result<Attempted<HoldOutcome>, ApiError> {
        let HoldRequest {
            amount,
            message,
            model,
            pricing,
            key,
            taken: now,
            expires,
        } = *request;
        let user = token.username().as_str();
        let held = signed(amount)?;
        let limits = Limits {
            model,
            window: shape.window.clone(),
            minutes: shape.minutes.clone(),
        };
        let take = self.charge_for_hold(token, amount, &limits, now)?;
        let shard = hold
            .hold_id
            .strip_prefix(HOLD_PREFIX)
            .and_then(|id| Uuid::parse_str(id).ok())
            .map_or_else(|| "0".to_owned(), |id| shard_of(&id));
        let mut entry = Put::builder()
            .table_name(&self.tables.chats)
            .item(USERNAME, s(user))
            .item(CHAT_ID, s(&hold.hold_id))
            .item(KIND, s("hold"))
            .item(AMOUNT, n(-held))
            .item(STATE, s(OPEN))
            .item("model", s(model))
            .item("prices", s(pricing.to_string()))
            .item("message", s(message.as_str()))
            .item("counted", AttributeValue::Bool(true))
            .item("open_shard", s(shard))
            .item("deadline", n(expires.unix_seconds()))
            .item(CREATED_AT, s(now.iso8601()))
            .condition_expression("attribute_not_exists(chat_id)");
        if let Some(marker_id) = &hold.marker_id {
            entry = entry.item("marker_id", s(marker_id));
        }
        if let Some(key) = &hold.key {
            entry = entry
                .item("key_id", s(&key.id))
                .item("key_at", n(key.taken.unix_seconds()));
        }
        let mut items = vec![
            TransactWriteItem::builder().update(take).build(),
            TransactWriteItem::builder()
                .put(entry.build().map_err(ApiError::internal)?)
                .build(),
        ];
        if let (Some(marker_id), Some(keyed)) = (&hold.marker_id, key) {
            let marker = markers::pending(
                &self.tables.chats,
                user,
                marker_id,
                &hold.hold_id,
                &keyed.request_hash,
                now,
            )?;
            items.push(TransactWriteItem::builder().put(marker).build());
        }
        let open_cap = self.open_calls_per_user;
        let chat_cap = self.chats_per_minute;
        let held = || Attempted::Done(HoldOutcome::Held(hold.clone()));
        self.transact(items, deadline, held, |reasons| {
            // The hold's id is new to this request alone: if it is taken,
            // an earlier send of this same transaction went through.
            if condition_failed(reasons, HOLD_ENTRY) {
                return Some(Ok(held()));
            }
            let marker_failed = key.is_some() && condition_failed(reasons, HOLD_MARKER);
            if !marker_failed && condition_failed(reasons, HOLD_ACCOUNT) {
                if let Some(next) = reshape(reasons, HOLD_ACCOUNT, token, shape, chat_cap, now) {
                    return Some(Ok(Attempted::Again(next)));
                }
            }
            // The key first: an answered retry is replayed even when the
            // balance could not pay for another chat.
            if let Some(keyed) = key.filter(|_| condition_failed(reasons, HOLD_MARKER)) {
                return Some(
                    marker_of(reasons, HOLD_MARKER)
                        .and_then(|marker| replay_of(marker, &keyed.request_hash))
                        .map(|saved| Attempted::Done(HoldOutcome::Replayed(saved))),
                );
            }
            if condition_failed(reasons, HOLD_ACCOUNT) {
                return Some(Err(refusal_of(
                    reasons,
                    HOLD_ACCOUNT,
                    token,
                    (model, amount),
                    now,
                    (open_cap, chat_cap),
                )));
            }
            None
        })
        .await
    }

    /// Closes `hold` for the chat `chat` (whose cost is at most the hold):
    /// the cost stays taken, the rest goes back, the chat is saved with its
    /// usage and the key's marker answered, in one transaction. `false` if
    /// the hold is no longer open: the sweeper settled it first.
    pub async fn settle(
        &self,
        hold: &Hold,
        chat: &ChatRecord<'_>,
        deadline: Deadline,
    ) -> Result<bool, ApiError> {
        self.close_giving_back(|to_key| self.settle_items(hold, chat, to_key), deadline)
            .await
    }

    /// Closes a hold with the items `items(true)` make, which give back to
    /// its key's budget too; if the key has gone or moved to another
    /// window since, with `items(false)`, which leave the key alone.
    async fn close_giving_back(
        &self,
        items: impl Fn(bool) -> Result<Vec<TransactWriteItem>, ApiError>,
        deadline: Deadline,
    ) -> Result<bool, ApiError> {
        let with_key = items(true)?;
        let without_key = items(false)?;
        if with_key != without_key {
            let closed = self
                .transact(
                    with_key,
                    deadline,
                    || Some(true),
                    |reasons| {
                        if condition_failed(reasons, 1) {
                            return Some(Ok(Some(true)));
                        }
                        if condition_failed(reasons, 0) {
                            return Some(Ok(Some(false)));
                        }
                        // The account's condition: only the key's part can
                        // fail on an account that exists.
                        condition_failed(reasons, CLOSE_ACCOUNT).then_some(Ok(None))
                    },
                )
                .await?;
            if let Some(closed) = closed {
                return Ok(closed);
            }
        }
        self.close_hold(without_key, deadline).await
    }

    fn settle_items(
        &self,
        hold: &Hold,
        chat: &ChatRecord<'_>,
        to_key: bool,
    ) -> Result<Vec<TransactWriteItem>, ApiError> {
        let user = hold.username.as_str();
        let refund = hold.amount.saturating_sub(chat.cost);
        let mut items = vec![
            self.close(hold, "settled")?,
            TransactWriteItem::builder()
                .put(chat.put(
                    &self.tables.chats,
                    user,
                    signed(refund)?,
                    hold.key.as_ref().map(|key| key.id.as_str()),
                )?)
                .build(),
        ];
        items.extend(self.give_back(hold, refund, to_key)?);
        if let Some(marker_id) = &hold.marker_id {
            let answer = markers::answer(&self.tables.chats, user, marker_id, &hold.hold_id, chat)?;
            items.push(TransactWriteItem::builder().update(answer).build());
        }
        Ok(items)
    }

    /// The account's part of closing `hold` with `refund` given back: the
    /// credit, and the open call counted out. A hold from before the count
    /// with nothing to give back leaves the account alone.
    /// With `to_key`, the refund also goes back to the budget of the key
    /// the hold was taken with (see `key_limits`).
    fn give_back(
        &self,
        hold: &Hold,
        refund: Credits,
        to_key: bool,
    ) -> Result<Option<TransactWriteItem>, ApiError> {
        let user = hold.username.as_str();
        let update = if let Some(key) = hold.key.as_ref().filter(|_| to_key && !refund.is_zero()) {
            self.credit_closing_keyed_call(user, signed(refund)?, &key.id, refund, key.taken)?
        } else if hold.counted {
            self.credit_closing_call(user, signed(refund)?)?
        } else if !refund.is_zero() {
            self.credit(user, signed(refund)?)?
        } else {
            return Ok(None);
        };
        Ok(Some(TransactWriteItem::builder().update(update).build()))
    }

    /// The key's marker deleted with the hold's close, so the client may
    /// try the key again: the call it stood for has no reply to replay.
    fn forget_marker(&self, hold: &Hold) -> Result<Option<TransactWriteItem>, ApiError> {
        let Some(marker_id) = &hold.marker_id else {
            return Ok(None);
        };
        let forget = markers::forget(
            &self.tables.chats,
            hold.username.as_str(),
            marker_id,
            &hold.hold_id,
        )?;
        Ok(Some(TransactWriteItem::builder().delete(forget).build()))
    }

    /// Gives all of `hold` back: the hold closes as released and a release
    /// entry records the return, in one transaction; the key's marker goes,
    /// so the client may retry with it. `false` if the hold was no longer
    /// open (or never taken): nothing was given back now.
    pub async fn release(
        &self,
        hold: &Hold,
        reason: ReleaseReason,
        deadline: Deadline,
    ) -> Result<bool, ApiError> {
        // An id of this call's own, so that finding it taken can only mean
        // this call's earlier send went through (a release by anyone else
        // shows as the hold being closed).
        let entry = self.closing_entry(
            hold,
            RELEASE_PREFIX,
            "release",
            hold.amount,
            reason.as_str(),
        )?;
        self.close_giving_back(
            |to_key| {
                let mut items = vec![self.close(hold, "released")?, entry.clone()];
                items.extend(self.give_back(hold, hold.amount, to_key)?);
                items.extend(self.forget_marker(hold)?);
                Ok(items)
            },
            deadline,
        )
        .await
    }

    /// Records on the open `hold` what its chat owes, for the sweeper to
    /// settle: the chat as [`Store::settle`] would have saved it. One write
    /// to the hold item alone, which no other chat of the user touches, so
    /// it goes through where the settle's transaction met conflicts on the
    /// account. `false` if the hold is no longer open (the settle went
    /// through after all, or the sweeper came first).
    pub async fn record_owed(&self, hold: &Hold, chat: &ChatRecord<'_>) -> Result<bool, ApiError> {
        let result = self
            .update_open_hold(hold)
            .update_expression(
                "SET owed_chat_id = :chat, owed_cost = :cost, #message = :message, \
                 #response = :response, input_tokens = :input, output_tokens = :output, \
                 cache_read_tokens = :cache_read, cache_write_tokens = :cache_write, \
                 #finish = :finish, owed_at_ms = :at",
            )
            .expression_attribute_names("#message", "message")
            .expression_attribute_names("#response", "response")
            .expression_attribute_names("#finish", "finish")
            .expression_attribute_values(":chat", s(chat.chat_id.to_string()))
            .expression_attribute_values(":cost", n(chat.cost))
            .expression_attribute_values(":message", s(chat.message.as_str()))
            .expression_attribute_values(":response", s(chat.response))
            .expression_attribute_values(":input", n(chat.usage.input_tokens))
            .expression_attribute_values(":output", n(chat.usage.output_tokens))
            .expression_attribute_values(":cache_read", n(chat.usage.cache_read_tokens))
            .expression_attribute_values(":cache_write", n(chat.usage.cache_write_tokens))
            .expression_attribute_values(":finish", s(chat.finish.as_str()))
            .expression_attribute_values(":at", n(chat.created.unix_millis()))
            .send()
            .await;
        Ok(unless_refused(result)?.is_some())
    }

    /// Marks the open `hold` as one whose model refused the call, so that
    /// the sweeper gives it back: for a release that could not commit. One
    /// write to the hold item alone. `false` if it is no longer open.
    pub async fn mark_refused(&self, hold: &Hold) -> Result<bool, ApiError> {
        let result = self
            .update_open_hold(hold)
            .update_expression("SET refused = :yes")
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .send()
            .await;
        Ok(unless_refused(result)?.is_some())
    }

    /// A write to `hold`'s item alone, if it is still open: what
    /// [`Store::record_owed`] and [`Store::mark_refused`] add to it.
    fn update_open_hold(
        &self,
        hold: &Hold,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.tables.chats)
            .key(USERNAME, s(hold.username.as_str()))
            .key(CHAT_ID, s(&hold.hold_id))
            .condition_expression("#state = :open")
            .expression_attribute_names("#state", STATE)
            .expression_attribute_values(":open", s(OPEN))
    }

    /// Closes an expired `hold` for the sweeper: given back if its model
    /// refused the call; else at what its chat recorded it owes, or, with
    /// nothing recorded, at its whole amount with the chat saved without a
    /// reply (see [`SweptHold`]); under the same "still open" condition as
    /// a settle.
    pub async fn sweep_hold(&self, hold: &Hold, deadline: Deadline) -> Result<SweptHold, ApiError> {
        let item = self
            .client
            .get_item()
            .table_name(&self.tables.chats)
            .key(USERNAME, s(hold.username.as_str()))
            .key(CHAT_ID, s(&hold.hold_id))
            .consistent_read(true)
            .send()
            .await
            .map_err(storage_error)?
            .item;
        let Some(item) = item.filter(is_open) else {
            return Ok(SweptHold::ClosedMeanwhile);
        };
        let hold = Hold {
            counted: matches!(item.get("counted"), Some(AttributeValue::Bool(true))),
            key: held_key_of(&item),
            model: string_of(&item, "model").unwrap_or_default().to_owned(),
            ..hold.clone()
        };
        if matches!(item.get("refused"), Some(AttributeValue::Bool(true))) {
            let released = self
                .release(&hold, ReleaseReason::ModelRefused, deadline)
                .await?;
            return Ok(if released {
                SweptHold::Released
            } else {
                SweptHold::ClosedMeanwhile
            });
        }
        match owed_of(&item) {
            Ok(Some(owed)) => {
                let chat = owed.record();
                let cost = chat.cost;
                let closed = self
                    .close_giving_back(|to_key| self.settle_items(&hold, &chat, to_key), deadline)
                    .await?;
                return Ok(if closed {
                    SweptHold::SettledOwed { cost }
                } else {
                    SweptHold::ClosedMeanwhile
                });
            }
            Ok(None) => {}
            // What was recorded cannot be read back: the bound below
            // still charges the call, within its hold.
            Err(e) => {
                tracing::error!(hold = %hold.hold_id, error = %e, "an owed chat could not be read")
            }
        }
        // Nothing recorded: the whole hold, with the chat saved (its
        // message kept on the hold, no reply) and the key answered, so a
        // retry under it replays this rather than paying again.
        let message = string_of(&item, "message")
            .ok()
            .and_then(|m| ChatMessage::parse(m.to_owned()).ok());
        let items = match &message {
            Some(message) => self.settle_items(
                &hold,
                // The whole hold is charged: nothing goes back to the key.
                &ChatRecord {
                    chat_id: Uuid::now_v7(),
                    model: string_of(&item, "model").unwrap_or_default(),
                    message,
                    response: "",
                    replay: None,
                    tool_calls: &[],
                    cost: hold.amount,
                    usage: Usage::default(),
                    finish: Finish::Length,
                    created: Timestamp::now(),
                },
                false,
            )?,
            // A hold from before messages were kept: its ledger entry alone.
            None => {
                let entry =
                    self.closing_entry(&hold, SETTLE_PREFIX, "settle", Credits::ZERO, "abandoned")?;
                let mut items = vec![self.close(&hold, "settled")?, entry];
                items.extend(self.give_back(&hold, Credits::ZERO, false)?);
                items.extend(self.forget_marker(&hold)?);
                items
            }
        };
        Ok(if self.close_hold(items, deadline).await? {
            SweptHold::SettledAtBound { cost: hold.amount }
        } else {
            SweptHold::ClosedMeanwhile
        })
    }

    /// A ledger entry that closes `hold`, giving back `amount`, under an id
    /// new to this call.
    fn closing_entry(
        &self,
        hold: &Hold,
        prefix: &str,
        kind: &str,
        amount: Credits,
        reason: &str,
    ) -> Result<TransactWriteItem, ApiError> {
        let mut entry = Put::builder();
        // What usage groups it by: the hold's model and key.
        if !hold.model.is_empty() {
            entry = entry.item("model", s(&hold.model));
        }
        if let Some(key) = &hold.key {
            entry = entry.item("key_id", s(&key.id));
        }
        let entry = entry
            .table_name(&self.tables.chats)
            .item(USERNAME, s(hold.username.as_str()))
            .item(CHAT_ID, s(format!("{prefix}{}", Uuid::now_v7())))
            .item(KIND, s(kind))
            .item(AMOUNT, n(signed(amount)?))
            .item("reason", s(reason))
            .item("hold_ref", s(&hold.hold_id))
            .item(CREATED_AT, s(Timestamp::now().iso8601()))
            .condition_expression("attribute_not_exists(chat_id)")
            .build()
            .map_err(ApiError::internal)?;
        Ok(TransactWriteItem::builder().put(entry).build())
    }

    /// Up to `limit` open holds whose deadline passed before `now`, read a
    /// page per shard in turn, so that every shard is served in each run
    /// however many holds one of them has.
    pub async fn expired_holds(&self, now: Timestamp, limit: usize) -> Result<Vec<Hold>, ApiError> {
        // Per shard: `Some(start)` while it has more to read.
        let mut cursors: Vec<Option<Option<HashMap<String, AttributeValue>>>> =
            (0..OPEN_HOLD_SHARDS).map(|_| Some(None)).collect();
        let page_size = sweep_page(limit);
        let mut found = Vec::new();
        while cursors.iter().any(Option::is_some) {
            for (shard, cursor) in cursors.iter_mut().enumerate() {
                let Some(start) = cursor.take() else {
                    continue;
                };
                let page = self
                    .client
                    .query()
                    .table_name(&self.tables.chats)
                    .index_name(OPEN_HOLDS_INDEX)
                    .key_condition_expression("open_shard = :shard AND deadline < :now")
                    .expression_attribute_values(":shard", s(shard.to_string()))
                    .expression_attribute_values(":now", n(now.unix_seconds()))
                    .limit(page_size)
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .map_err(storage_error)?;
                for item in page.items() {
                    // One unreadable item must not keep every other hold
                    // from being closed: it is logged and passed over.
                    match hold_of(item) {
                        Ok(hold) => found.push(hold),
                        Err(e) => tracing::error!(error = %e, "an open hold could not be read"),
                    }
                    if found.len() >= limit {
                        return Ok(found);
                    }
                }
                *cursor = page.last_evaluated_key.map(Some);
            }
        }
        Ok(found)
    }

    /// The update that closes a hold as `state`, if it is still open; it
    /// also leaves the index of open holds.
    fn close(&self, hold: &Hold, state: &str) -> Result<TransactWriteItem, ApiError> {
        let update = Update::builder()
            .table_name(&self.tables.chats)
            .key(USERNAME, s(hold.username.as_str()))
            .key(CHAT_ID, s(&hold.hold_id))
            .update_expression("SET #state = :closed REMOVE open_shard")
            .condition_expression("#state = :open")
            .expression_attribute_names("#state", STATE)
            .expression_attribute_values(":closed", s(state))
            .expression_attribute_values(":open", s(OPEN))
            .build()
            .map_err(ApiError::internal)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// Sends a transaction whose item 0 closes a hold and whose item 1 is
    /// new to it; `false` if the hold had been closed by another (or was
    /// never taken).
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
                // Item 1 (the chat, or the closing entry) is new to this
                // transaction alone: if it is there, an earlier send of
                // this same transaction committed after all.
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

/// The query page for a sweep of at most `limit` holds: small enough that
/// one round over the shards fits `limit`, so every shard with expired
/// holds gets some of the run, and never past [`SWEEP_PAGE`].
fn sweep_page(limit: usize) -> i32 {
    (limit / usize::from(OPEN_HOLD_SHARDS)).clamp(1, SWEEP_PAGE) as i32
}

/// The index partition of a hold: spread by its id's random bits.
fn shard_of(hold: &Uuid) -> String {
    (hold.as_bytes()[15] % OPEN_HOLD_SHARDS).to_string()
}

fn hold_of(item: &HashMap<String, AttributeValue>) -> Result<Hold, ApiError> {
    let username = Username::from_stored(string_of(item, USERNAME)?)
        .map_err(|e| ApiError::internal(format!("a hold's username: {e}")))?;
    Ok(Hold {
        username,
        hold_id: string_of(item, CHAT_ID)?.to_owned(),
        amount: Credits::new(number_of(item, AMOUNT)?.unsigned_abs()),
        marker_id: item.get("marker_id").and_then(|v| v.as_s().ok()).cloned(),
        // The index does not carry these; the sweeper reads the item itself.
        counted: false,
        key: None,
        model: String::new(),
    })
}

/// The key a hold item says it was taken with, if any.
fn held_key_of(item: &HashMap<String, AttributeValue>) -> Option<HeldKey> {
    Some(HeldKey {
        id: string_of(item, "key_id").ok()?.to_owned(),
        taken: Timestamp::from_unix_seconds(number_of(item, "key_at").ok()?)?,
    })
}

/// What a hold item records its chat owes, read back for the sweeper.
struct Owed {
    chat_id: Uuid,
    model: String,
    message: ChatMessage,
    response: String,
    cost: Credits,
    usage: Usage,
    finish: Finish,
    created: Timestamp,
}

impl Owed {
    fn record(&self) -> ChatRecord<'_> {
        ChatRecord {
            chat_id: self.chat_id,
            model: &self.model,
            message: &self.message,
            response: &self.response,
            replay: None,
            // Not recorded with what is owed: the client had them in its
            // stream, and the chat is saved with its text.
            tool_calls: &[],
            cost: self.cost,
            usage: self.usage,
            finish: self.finish,
            created: self.created,
        }
    }
}

/// The owed chat on a hold item, if [`Store::record_owed`] wrote one.
fn owed_of(item: &HashMap<String, AttributeValue>) -> Result<Option<Owed>, ApiError> {
    if !item.contains_key("owed_chat_id") {
        return Ok(None);
    }
    let bad = |what: &str| ApiError::internal(format!("an owed chat's {what} cannot be read"));
    // Records from before cache tokens were kept have none.
    let count = |name: &str| number_of(item, name).map_or(0, i64::unsigned_abs);
    Ok(Some(Owed {
        chat_id: Uuid::parse_str(string_of(item, "owed_chat_id")?).map_err(|_| bad("id"))?,
        // Holds from before the catalog name no model.
        model: string_of(item, "model").unwrap_or_default().to_owned(),
        message: ChatMessage::parse(string_of(item, "message")?.to_owned())
            .map_err(|_| bad("message"))?,
        response: string_of(item, "response")?.to_owned(),
        cost: Credits::new(number_of(item, "owed_cost")?.unsigned_abs()),
        usage: Usage {
            input_tokens: number_of(item, "input_tokens")?.unsigned_abs(),
            output_tokens: number_of(item, "output_tokens")?.unsigned_abs(),
            cache_read_tokens: count("cache_read_tokens"),
            cache_write_tokens: count("cache_write_tokens"),
        },
        finish: Finish::parse(string_of(item, "finish")?).ok_or_else(|| bad("finish"))?,
        created: Timestamp::from_unix_millis(number_of(item, "owed_at_ms")?)
            .ok_or_else(|| bad("time"))?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sweeps_limit_is_shared_among_the_shards_one_page_each_within_bounds() {
        assert_eq!(OPEN_HOLD_SHARDS, 8);
        assert_eq!(sweep_page(100), 12);
        assert_eq!(sweep_page(16), 2);
        // Never an empty page, never past the largest.
        assert_eq!(sweep_page(3), 1);
        assert_eq!(sweep_page(500), SWEEP_PAGE as i32);
    }
}
