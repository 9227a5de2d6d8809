//! The chats table, and the one transaction that charges for a chat.

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    CancellationReason, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use uuid::Uuid;

use super::retry::{backoff, worth_retrying, MAX_ATTEMPTS};
use super::users::tokens_of;
use super::{n, s, storage_error, Store};
use crate::clock::Instant;
use crate::domain::{AuthToken, ChatMessage};
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

/// A chat as saved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SavedChat {
    pub chat_id: String,
    pub message: String,
    pub response: String,
    pub timestamp: String,
}

// Positions of the three actions in the transaction; DynamoDB reports
// cancellation reasons in the same order.
const SESSION: usize = 0;
const CHARGE: usize = 1;
const SAVE: usize = 2;

impl Store {
    /// Charges `chat.cost` tokens and saves the chat, all or nothing, in one
    /// `TransactWriteItems`: the session must be live, the balance must cover
    /// the cost, and the chat id must be new. There is no read before the
    /// write, so concurrent chats can neither overdraw nor lose an update.
    pub async fn charge_and_save_chat(
        &self,
        token: &AuthToken,
        chat: &ChatRecord<'_>,
        now: Instant,
    ) -> Result<(), ApiError> {
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

        let mut attempt = 0;
        loop {
            let result = self
                .client
                .transact_write_items()
                .transact_items(
                    TransactWriteItem::builder()
                        .condition_check(session.clone())
                        .build(),
                )
                .transact_items(TransactWriteItem::builder().update(charge.clone()).build())
                .transact_items(TransactWriteItem::builder().put(save.clone()).build())
                .send()
                .await;
            let verdict = match result {
                Ok(_) => return Ok(()),
                Err(err) => classify(err, chat.cost),
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
                Verdict::AlreadySaved => return Ok(()),
                Verdict::Refused(error) => return Err(error),
            }
        }
    }
}

enum Verdict {
    Retry,
    AlreadySaved,
    Refused(ApiError),
}

fn classify(
    err: SdkError<TransactWriteItemsError, impl std::fmt::Debug + Send + Sync + 'static>,
    cost: u32,
) -> Verdict {
    let reasons: Vec<CancellationReason> = match err.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
            cancelled.cancellation_reasons().to_vec()
        }
        _ => return Verdict::Refused(storage_error(err)),
    };
    let failed =
        |index: usize| reasons.get(index).and_then(|r| r.code()) == Some("ConditionalCheckFailed");
    if failed(SESSION) {
        return Verdict::Refused(ApiError::Unauthorized);
    }
    if failed(CHARGE) {
        return Verdict::Refused(match reasons[CHARGE].item() {
            Some(item) => match tokens_of(item) {
                Ok(balance) => ApiError::InsufficientTokens { balance, cost },
                Err(e) => e,
            },
            // The session is live but its user is gone.
            None => ApiError::Unauthorized,
        });
    }
    if failed(SAVE) {
        return Verdict::AlreadySaved;
    }
    if worth_retrying(&reasons) {
        return Verdict::Retry;
    }
    Verdict::Refused(storage_error(err))
}
