//! The chats table, and the one transaction that charges for a chat.
//!
//! The chats table also holds, under each user's partition, the user's
//! ledger entries (sort keys `ledger#...`) and idempotency markers
//! (`idempotency#...`, the `markers` module's): both sort after every chat
//! id, so a history query (`chat_id < "idempotency#"`) never lists them. A chat item carries its
//! own ledger `amount`, so a flat chat stays one two-item transaction.

use crate::credits::Credits;

use aws_sdk_dynamodb::types::{CancellationReason, TransactWriteItem};

use super::accounts::{balance_of, require_live, Limits};
use super::chat_item::ChatRecord;
use super::key_limits::{KeyEntry, Window};
use super::markers::{self, SavedChat};
use super::rate::{over_cap, rate_limited, rate_retry, Minutes};
use super::transact::condition_failed;
use super::{number_of, signed, Store};
use crate::clock::Timestamp;
use crate::deadline::Deadline;
use crate::domain::{KeyedRequest, TokenKind, VerifiedToken};
use crate::error::ApiError;

/// What charging for a chat came to.
#[derive(Debug, PartialEq, Eq)]
pub enum ChatOutcome {
    /// Charged (the record's cost), and saved as the new chat.
    Saved,
    /// The idempotency key was used before, for the same message: nothing
    /// was charged now, and this is the earlier reply.
    Replayed(SavedChat),
}

// Positions of the actions in the transaction; DynamoDB reports
// cancellation reasons in the same order.
const CHARGE: usize = 0;
const SAVE: usize = 1;
const MARKER: usize = 2;

impl Store {
    /// Charges `chat.cost` tokens and saves the chat, all or nothing, in one
    /// `TransactWriteItems` of two items (three with a key): the account's
    /// update checks the session and the balance in one condition, and the
    /// chat id must be new. There is no read before the write, so concurrent
    /// chats can neither overdraw nor lose an update.
    ///
    /// With an idempotency key the same transaction also creates a marker
    /// item for (user, key), which must not exist yet. A retry of a chat that
    /// went through finds the marker and is answered from it: no second
    /// charge, however late the retry comes and however many arrive at once.
    pub async fn charge_and_save_chat(
        &self,
        token: &VerifiedToken,
        chat: &ChatRecord<'_>,
        key: Option<&KeyedRequest>,
        deadline: Deadline,
    ) -> Result<ChatOutcome, ApiError> {
        let mut shape = Shape::GUESS;
        for _ in 0..SHAPE_TRIES {
            match self
                .charge_and_save_in(token, chat, key, &shape, deadline)
                .await?
            {
                Attempted::Done(outcome) => return Ok(outcome),
                Attempted::Again(next) => shape = next,
            }
        }
        Err(shape_contended())
    }

    /// [`Store::charge_and_save_chat`] written as `shape` says; `Again`
    /// when the account's refusal says to write it another way.
    async fn charge_and_save_in(
        &self,
        token: &VerifiedToken,
        chat: &ChatRecord<'_>,
        key: Option<&KeyedRequest>,
        shape: &Shape,
        deadline: Deadline,
    ) -> Result<Attempted<ChatOutcome>, ApiError> {
        let user = token.username().as_str();
        let limits = Limits {
            model: chat.model,
            window: shape.window.clone(),
            minutes: shape.minutes.clone(),
        };
        let charge = self.charge(token, chat.cost, &limits, chat.created)?;
        let cost = signed(chat.cost)?;
        let key_id = (token.kind() == TokenKind::ApiKey).then(|| token.session_id());
        let save = chat.put(
            &self.tables.chats,
            user,
            -cost,
            key_id.as_ref().map(|id| id.as_str()),
        )?;
        // Refused if the key was used before, handing back the earlier
        // chat's reply, so a replay costs no second read.
        let marker = key
            .map(|keyed| markers::answered(&self.tables.chats, user, keyed, chat))
            .transpose()?;

        // In the order of CHARGE, SAVE and MARKER above.
        let mut items = vec![
            TransactWriteItem::builder().update(charge).build(),
            TransactWriteItem::builder().put(save).build(),
        ];
        let positions = Positions {
            marker: marker.is_some().then_some(MARKER),
        };
        items.extend(marker.map(|m| TransactWriteItem::builder().put(m).build()));
        let cap = self.chats_per_minute;

        self.transact(
            items,
            deadline,
            || Attempted::Done(ChatOutcome::Saved),
            |reasons| {
                let replay = positions
                    .marker
                    .is_some_and(|at| condition_failed(reasons, at));
                if !condition_failed(reasons, SAVE) && !replay && condition_failed(reasons, CHARGE)
                {
                    if let Some(next) = reshape(reasons, CHARGE, token, shape, cap, chat.created) {
                        return Some(Ok(Attempted::Again(next)));
                    }
                }
                classify(reasons, &positions, token, chat, key, cap).map(|r| r.map(Attempted::Done))
            },
        )
        .await
    }
}

/// A chat's write, or the shape to send it again in.
pub(super) enum Attempted<T> {
    Done(T),
    Again(Shape),
}

/// How a chat's account update is written: what it assumes of the API
/// key's budget window, and how it counts the chat in the minute. Nearly
/// always [`Shape::GUESS`]; the account's refusal says when not.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Shape {
    pub window: Window,
    pub minutes: Minutes,
}

impl Shape {
    pub const GUESS: Shape = Shape {
        window: Window::Current,
        minutes: Minutes::Count,
    };
}

/// Sends of a chat's write in another shape before giving up: a new key
/// window or a crowded minute map needs one more; another chat changing
/// either first, one more.
pub(super) const SHAPE_TRIES: usize = 4;

/// Chats reshaping one account kept crossing: a 503, retried.
pub(super) fn shape_contended() -> ApiError {
    ApiError::Unavailable("an account's budget window or chat count kept changing; retry".into())
}

/// The shape a chat refused by its account update must be sent again in,
/// if the shape is what refused it: the API key's window ended, or another
/// chat renewed it first; the minute counters need rewriting, or another
/// chat changed them first. `None`: the refusal is for another cause.
pub(super) fn reshape(
    reasons: &[CancellationReason],
    index: usize,
    token: &VerifiedToken,
    shape: &Shape,
    cap: u32,
    now: Timestamp,
) -> Option<Shape> {
    let account = reasons.get(index)?.item()?;
    require_live(account, token, now).ok()?;
    let window = if token.kind() == TokenKind::ApiKey {
        let entry = KeyEntry::of(account, token.session_id().as_str()).ok()??;
        match entry.renewal(now) {
            Some(renew) => (renew != shape.window).then_some(renew),
            None => matches!(shape.window, Window::Renew { .. }).then_some(Window::Current),
        }
    } else {
        None
    };
    let minutes = rate_retry(account, &shape.minutes, cap, now);
    if window.is_none() && minutes.is_none() {
        return None;
    }
    Some(Shape {
        window: window.unwrap_or_else(|| shape.window.clone()),
        minutes: minutes.unwrap_or_else(|| shape.minutes.clone()),
    })
}

/// Where the optional items of a chat's transaction are, if present.
struct Positions {
    marker: Option<usize>,
}

/// What a cancelled charge came to, if its conditions decide it.
fn classify(
    reasons: &[CancellationReason],
    positions: &Positions,
    token: &VerifiedToken,
    chat: &ChatRecord<'_>,
    key: Option<&KeyedRequest>,
    cap: u32,
) -> Option<Result<ChatOutcome, ApiError>> {
    let failed = |index: usize| condition_failed(reasons, index);
    // First: this chat id is new to every request but this one, so if it is
    // saved, an earlier send of this same transaction committed after all
    // (and charged), whatever the other conditions now say of the account.
    if failed(SAVE) {
        return Some(Ok(ChatOutcome::Saved));
    }
    // Before the balance: a retry of a chat that went through is answered
    // with its reply even when the balance could not pay for another.
    if let Some(keyed) = key.filter(|_| positions.marker.is_some_and(failed)) {
        return Some(
            markers::marker_of(reasons, MARKER)
                .and_then(|marker| markers::replay_of(marker, &keyed.request_hash))
                .map(ChatOutcome::Replayed),
        );
    }
    if failed(CHARGE) {
        return Some(Err(refusal_of(
            reasons,
            CHARGE,
            token,
            (chat.model, chat.cost),
            chat.created,
            (0, cap),
        )));
    }
    None
}

/// The refusal of an account update that asked for `cost`: the old account
/// says which part of the condition failed; no account at all (a signed
/// token for a deleted user) is a 401 too. `open_cap` is the per-user cap
/// on open model calls the update checked (0: none).
pub(super) fn refusal_of(
    reasons: &[CancellationReason],
    index: usize,
    token: &VerifiedToken,
    (model, cost): (&str, Credits),
    now: Timestamp,
    (open_cap, chat_cap): (u32, u32),
) -> ApiError {
    let Some(account) = reasons.get(index).and_then(|r| r.item()) else {
        return ApiError::Unauthorized;
    };
    // The refused update's condition has three parts; the old account says
    // which failed, the operator's disabling first.
    if let Err(e) = require_live(account, token, now) {
        return e;
    }
    // Before the balance: open calls hold part of it, and give it back as
    // they settle, so a short balance may only be a busy one.
    if open_cap > 0
        && number_of(account, "open_calls").is_ok_and(|open| open >= i64::from(open_cap))
    {
        return ApiError::TooManyOpenCalls {
            retry_after: OPEN_CALL_RETRY_SECONDS,
        };
    }
    // Before the balance: a key's own limits are what the caller can
    // change for it.
    if token.kind() == TokenKind::ApiKey {
        match KeyEntry::of(account, token.session_id().as_str()) {
            Ok(Some(entry)) => {
                if let Some(refusal) = entry.refusal(model, cost, now) {
                    return refusal;
                }
            }
            Ok(None) => return ApiError::Unauthorized,
            Err(e) => return e,
        }
    }
    match balance_of(account) {
        // The balance first: a chat the balance refuses is not one the cap
        // refuses.
        // A balance below zero, which no write of ours makes, reads as none.
        Ok(balance) if balance < cost.signed().unwrap_or(i64::MAX) => {
            ApiError::InsufficientTokens {
                balance: Credits::from_signed(balance).unwrap_or_default(),
                cost,
            }
        }
        _ if over_cap(account, chat_cap, now) => rate_limited(now),
        Ok(balance) => ApiError::InsufficientTokens {
            balance: Credits::from_signed(balance).unwrap_or_default(),
            cost,
        },
        Err(e) => e,
    }
}

/// How long a caller refused for its open calls should wait: a model
/// call takes seconds, and the client's own backoff adds to this.
const OPEN_CALL_RETRY_SECONDS: u64 = 2;
