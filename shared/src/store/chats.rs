//! The chats table, and the one transaction that charges for a chat.

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use std::collections::HashMap;

use aws_sdk_dynamodb::operation::transact_get_items::TransactGetItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, Get, Put, ReturnValuesOnConditionCheckFailure,
    TransactGetItem, TransactWriteItem,
};
use uuid::Uuid;

use super::accounts::require_live;
use super::retry::{with_retries, worth_retrying, Attempt, Deadline};
use super::{n, number_of, s, storage_error, string_of, Store};
use crate::clock::Instant;
use crate::domain::{sha256_hex, ChatMessage, IdempotencyKey, VerifiedToken};
use crate::error::ApiError;

/// A chat about to be saved.
pub struct ChatRecord<'a> {
    /// UUIDv7, so a user's chats sort by time under the table's range key.
    pub chat_id: Uuid,
    pub message: &'a ChatMessage,
    pub response: &'a str,
    pub cost: u32,
    pub created: Instant,
}

/// A chat saved earlier under the same idempotency key: what its reply was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SavedChat {
    pub chat_id: String,
    pub response: String,
    pub timestamp: String,
}

/// What charging for a chat came to.
#[derive(Debug, PartialEq, Eq)]
pub enum ChatOutcome {
    /// Charged, and saved as the new chat.
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
        key: Option<&IdempotencyKey>,
        deadline: Deadline,
    ) -> Result<ChatOutcome, ApiError> {
        let user = token.username().as_str();
        let charge = self.charge(token, chat.cost, chat.created)?;
        let save = Put::builder()
            .table_name(&self.tables.chats)
            .item("username", s(user))
            .item("chat_id", s(chat.chat_id.to_string()))
            .item("message", s(chat.message.as_str()))
            .item("response", s(chat.response))
            .item("cost", n(chat.cost))
            .item("created_at", s(chat.created.iso8601()))
            .condition_expression("attribute_not_exists(chat_id)")
            .build()
            .map_err(ApiError::internal)?;
        let marker = key
            .map(|key| {
                Put::builder()
                    .table_name(&self.tables.chats)
                    .item("username", s(user))
                    .item("chat_id", s(key.marker_id()))
                    .item("chat_ref", s(chat.chat_id.to_string()))
                    .item(
                        "request_hash",
                        s(sha256_hex(chat.message.as_str().as_bytes())),
                    )
                    .item("response", s(chat.response))
                    .item("created_at", s(chat.created.iso8601()))
                    .condition_expression("attribute_not_exists(chat_id)")
                    // Hands back the earlier chat's reply on refusal, so a
                    // replay costs no second read.
                    .return_values_on_condition_check_failure(
                        ReturnValuesOnConditionCheckFailure::AllOld,
                    )
                    .build()
                    .map_err(ApiError::internal)
            })
            .transpose()?;

        // In the order of CHARGE, SAVE and MARKER above.
        let mut items = vec![
            TransactWriteItem::builder().update(charge).build(),
            TransactWriteItem::builder().put(save).build(),
        ];
        items.extend(marker.map(|m| TransactWriteItem::builder().put(m).build()));

        with_retries(deadline, || async {
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
                .await;
            match result {
                Ok(_) => Attempt::Done(Ok(ChatOutcome::Saved)),
                Err(err) => classify(err, token, chat),
            }
        })
        .await
    }
}

impl Store {
    /// What a chat with a paid model must know before the model is called,
    /// in one read: a live session, an earlier chat under the same
    /// idempotency key (answered from the record, without the model), and a
    /// balance that covers the cost. `Ok(None)` means: go ahead.
    ///
    /// It only filters: the charge that follows stays conditional, so
    /// concurrent chats are still counted exactly.
    pub async fn check_before_model(
        &self,
        token: &VerifiedToken,
        message: &ChatMessage,
        key: Option<&IdempotencyKey>,
        cost: u32,
        now: Instant,
        deadline: Deadline,
    ) -> Result<Option<SavedChat>, ApiError> {
        let mut reads = vec![TransactGetItem::builder()
            .get(self.account_get(token, "tokens")?)
            .build()];
        if let Some(key) = key {
            let marker = Get::builder()
                .table_name(&self.tables.chats)
                .key("username", s(token.username().as_str()))
                .key("chat_id", s(key.marker_id()))
                .build()
                .map_err(ApiError::internal)?;
            reads.push(TransactGetItem::builder().get(marker).build());
        }
        let output = with_retries(deadline, || async {
            let result = self
                .client
                .transact_get_items()
                .set_transact_items(Some(reads.clone()))
                .send()
                .await;
            match result {
                Ok(output) => Attempt::Done(Ok(output)),
                // A read collides with a concurrent chat's write on the
                // account (which finishes in milliseconds), or is throttled.
                Err(err) if read_cancelled_retryably(&err) => Attempt::Retry,
                Err(err) => Attempt::Done(Err(storage_error(err))),
            }
        })
        .await?;
        let mut items = output.responses().iter().map(|r| r.item());
        let account = items.next().flatten().ok_or(ApiError::Unauthorized)?;
        require_live(account, token, now)?;
        // As in the charging transaction: a retry of a chat that went
        // through gets its reply even when the balance is spent.
        if let Some(marker) = items.next().flatten() {
            return replay_of(marker, message).map(Some);
        }
        let balance = number_of(account, "tokens")?;
        if balance < i64::from(cost) {
            return Err(ApiError::InsufficientTokens { balance, cost });
        }
        Ok(None)
    }
}

/// A read cancelled for a reason a later try does not share.
fn read_cancelled_retryably<R>(err: &SdkError<TransactGetItemsError, R>) -> bool {
    match err.as_service_error() {
        Some(TransactGetItemsError::TransactionCanceledException(cancelled)) => {
            worth_retrying(cancelled.cancellation_reasons())
        }
        _ => false,
    }
}

fn classify(
    err: SdkError<TransactWriteItemsError, HttpResponse>,
    token: &VerifiedToken,
    chat: &ChatRecord<'_>,
) -> Attempt<ChatOutcome> {
    let reasons: Vec<CancellationReason> = match err.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
            cancelled.cancellation_reasons().to_vec()
        }
        _ => return Attempt::Done(Err(storage_error(err))),
    };
    let failed =
        |index: usize| reasons.get(index).and_then(|r| r.code()) == Some("ConditionalCheckFailed");
    // First: this chat id is new to every request but this one, so if it is
    // saved, an earlier send of this same transaction committed after all
    // (and charged), whatever the other conditions now say of the account.
    if failed(SAVE) {
        return Attempt::Done(Ok(ChatOutcome::Saved));
    }
    // Before the balance: a retry of a chat that went through is answered
    // with its reply even when the balance could not pay for another.
    if failed(MARKER) {
        return Attempt::Done(match reasons[MARKER].item() {
            Some(marker) => replay_of(marker, chat.message).map(ChatOutcome::Replayed),
            None => Err(ApiError::internal(
                "an idempotency marker refused a put but came back empty",
            )),
        });
    }
    if failed(CHARGE) {
        // The old account says which half of the condition failed; no
        // account at all (a signed token for a deleted user) is a 401 too.
        return Attempt::Done(Err(match reasons[CHARGE].item() {
            Some(account) => match require_live(account, token, chat.created) {
                Ok(()) => match number_of(account, "tokens") {
                    Ok(balance) => ApiError::InsufficientTokens {
                        balance,
                        cost: chat.cost,
                    },
                    Err(e) => e,
                },
                Err(e) => e,
            },
            None => ApiError::Unauthorized,
        }));
    }
    if worth_retrying(&reasons) {
        return Attempt::Retry;
    }
    Attempt::Done(Err(storage_error(err)))
}

/// The earlier chat a marker stands for, if it was for the same message.
fn replay_of(
    marker: &HashMap<String, AttributeValue>,
    message: &ChatMessage,
) -> Result<SavedChat, ApiError> {
    if string_of(marker, "request_hash")? != sha256_hex(message.as_str().as_bytes()) {
        return Err(ApiError::IdempotencyKeyReused);
    }
    Ok(SavedChat {
        chat_id: string_of(marker, "chat_ref")?.to_owned(),
        response: string_of(marker, "response")?.to_owned(),
        timestamp: string_of(marker, "created_at")?.to_owned(),
    })
}
