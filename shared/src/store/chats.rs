//! The chats table, and the one transaction that charges for a chat.

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use std::collections::HashMap;

use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, Get, Put, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem, Update,
};
use uuid::Uuid;

use super::retry::{backoff, worth_retrying, MAX_ATTEMPTS};
use super::users::tokens_of;
use super::{n, s, storage_error, string_of, Store};
use crate::clock::Instant;
use crate::domain::{sha256_hex, AuthToken, ChatMessage, IdempotencyKey};
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
const SESSION: usize = 0;
const CHARGE: usize = 1;
const SAVE: usize = 2;
const MARKER: usize = 3;

impl Store {
    /// Charges `chat.cost` tokens and saves the chat, all or nothing, in one
    /// `TransactWriteItems`: the session must be live, the balance must cover
    /// the cost, and the chat id must be new. There is no read before the
    /// write, so concurrent chats can neither overdraw nor lose an update.
    ///
    /// With an idempotency key the same transaction also creates a marker
    /// item for (user, key), which must not exist yet. A retry of a chat that
    /// went through finds the marker and is answered from it: no second
    /// charge, however late the retry comes and however many arrive at once.
    pub async fn charge_and_save_chat(
        &self,
        token: &AuthToken,
        chat: &ChatRecord<'_>,
        key: Option<&IdempotencyKey>,
        now: Instant,
    ) -> Result<ChatOutcome, ApiError> {
        let user = token.username().as_str();
        let session = self.live_session_check(token, now)?;
        let charge = Update::builder()
            .table_name(&self.tables.users)
            .key("username", s(user))
            .update_expression("SET tokens = tokens - :cost")
            // Also fails when the user item is missing: nothing is created.
            .condition_expression("tokens >= :cost")
            .expression_attribute_values(":cost", n(chat.cost))
            // Hands back the balance on refusal, so the 402 can state it
            // without a second read.
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(ApiError::internal)?;
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

        // In the order of SESSION, CHARGE, SAVE and MARKER above.
        let mut items = vec![
            TransactWriteItem::builder()
                .condition_check(session)
                .build(),
            TransactWriteItem::builder().update(charge).build(),
            TransactWriteItem::builder().put(save).build(),
        ];
        items.extend(marker.map(|m| TransactWriteItem::builder().put(m).build()));

        let mut attempt = 0;
        loop {
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
                .await;
            let verdict = match result {
                Ok(_) => return Ok(ChatOutcome::Saved),
                Err(err) => classify(err, chat),
            };
            match verdict {
                Verdict::Retry if attempt + 1 < MAX_ATTEMPTS => {
                    attempt += 1;
                    backoff(attempt).await;
                }
                Verdict::Retry => {
                    return Err(ApiError::Unavailable(
                        "conflicts or throttling persisted past the retry budget".into(),
                    ))
                }
                // This chat id is saved, so it was charged: an earlier send
                // of this same transaction committed after all.
                Verdict::AlreadySaved => return Ok(ChatOutcome::Saved),
                Verdict::Done(outcome) => return outcome,
            }
        }
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
        token: &AuthToken,
        message: &ChatMessage,
        key: Option<&IdempotencyKey>,
        cost: u32,
        now: Instant,
    ) -> Result<Option<SavedChat>, ApiError> {
        let marker = key
            .map(|key| {
                Get::builder()
                    .table_name(&self.tables.chats)
                    .key("username", s(token.username().as_str()))
                    .key("chat_id", s(key.marker_id()))
                    .build()
                    .map_err(ApiError::internal)
            })
            .transpose()?;
        let (balance, marker) = self.account(token, marker, now).await?;
        // As in the charging transaction: a retry of a chat that went
        // through gets its reply even when the balance is spent.
        if let Some(marker) = marker {
            return replay_of(&marker, message).map(Some);
        }
        if balance < i64::from(cost) {
            return Err(ApiError::InsufficientTokens { balance, cost });
        }
        Ok(None)
    }
}

enum Verdict {
    Retry,
    AlreadySaved,
    Done(Result<ChatOutcome, ApiError>),
}

fn classify(
    err: SdkError<TransactWriteItemsError, HttpResponse>,
    chat: &ChatRecord<'_>,
) -> Verdict {
    let reasons: Vec<CancellationReason> = match err.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
            cancelled.cancellation_reasons().to_vec()
        }
        _ => return Verdict::Done(Err(storage_error(err))),
    };
    let failed =
        |index: usize| reasons.get(index).and_then(|r| r.code()) == Some("ConditionalCheckFailed");
    if failed(SESSION) {
        return Verdict::Done(Err(ApiError::Unauthorized));
    }
    // Before the balance: a retry of a chat that went through is answered
    // with its reply even when the balance could not pay for another.
    if failed(MARKER) {
        return Verdict::Done(match reasons[MARKER].item() {
            Some(marker) => replay_of(marker, chat.message).map(ChatOutcome::Replayed),
            None => Err(ApiError::internal(
                "an idempotency marker refused a put but came back empty",
            )),
        });
    }
    if failed(CHARGE) {
        return Verdict::Done(Err(match reasons[CHARGE].item() {
            Some(item) => match tokens_of(item) {
                Ok(balance) => ApiError::InsufficientTokens {
                    balance,
                    cost: chat.cost,
                },
                Err(e) => e,
            },
            // The session is live but its user is gone.
            None => ApiError::Unauthorized,
        }));
    }
    if failed(SAVE) {
        return Verdict::AlreadySaved;
    }
    if worth_retrying(&reasons) {
        return Verdict::Retry;
    }
    Verdict::Done(Err(storage_error(err)))
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
