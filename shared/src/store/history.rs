//! A user's saved chats, newest first, a page at a time.
//!
//! A page is the session read (a `GetItem` of the account) and then one
//! `Query` on the chats table. The query waits for the session: sent together they would
//! save a round trip, but a forged token naming a real user would then cost
//! a strongly consistent read of up to 1 MB, and its answer time would tell
//! how much history the user has.

use aws_sdk_dynamodb::types::AttributeValue;
use uuid::Uuid;

use super::markers::MARKER_PREFIX;
use super::{number_of, s, storage_error, string_of, Store, CHAT_ID, CREATED_AT};
use crate::clock::Timestamp;
use crate::domain::{Cursor, VerifiedToken};
use crate::error::ApiError;

/// One saved chat as the history shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryEntry {
    pub chat_id: String,
    pub message: String,
    pub response: String,
    pub timestamp: String,
    pub cost: i64,
}

/// A page of chats and, when older ones remain, where the next page starts.
#[derive(Debug, PartialEq, Eq)]
pub struct HistoryPage {
    pub chats: Vec<HistoryEntry>,
    pub next: Option<Cursor>,
}

impl Store {
    /// Up to `limit` of the user's chats, newest first, older than `cursor`.
    pub async fn history(
        &self,
        token: &VerifiedToken,
        limit: u32,
        cursor: Option<&Cursor>,
        now: Timestamp,
    ) -> Result<HistoryPage, ApiError> {
        let user = token.username().as_str();
        self.live_account(token, "username", now).await?;

        // Chat ids are UUIDv7 strings, which sort by time; idempotency
        // markers sort after every one of them, so `<` leaves them out, and
        // a cursor moves the bound down to the last chat already shown.
        let before = cursor.map_or_else(|| MARKER_PREFIX.to_owned(), |c| c.chat_id().to_string());
        let output = self
            .client
            .query()
            .table_name(&self.tables.chats)
            .key_condition_expression("username = :user AND chat_id < :before")
            .expression_attribute_values(":user", s(user))
            .expression_attribute_values(":before", s(before))
            .projection_expression("chat_id, message, #response, created_at, cost")
            // RESPONSE is a DynamoDB reserved word.
            .expression_attribute_names("#response", "response")
            .scan_index_forward(false)
            // One more than asked: whether it comes back says if there is a
            // next page, without a second query that might find nothing.
            .limit(limit as i32 + 1)
            .consistent_read(true)
            .send()
            .await
            .map_err(storage_error)?;
        let mut entries = output
            .items()
            .iter()
            .map(entry_of)
            .collect::<Result<Vec<_>, _>>()?;
        // A query also stops at 1 MB read, with LastEvaluatedKey set: a page
        // of long chats can hold fewer than `limit` and still not be the last.
        let more = entries.len() > limit as usize || output.last_evaluated_key().is_some();
        entries.truncate(limit as usize);
        let next = match entries.last() {
            Some(last) if more => Some(Cursor::after(Uuid::parse_str(&last.chat_id).map_err(
                |e| ApiError::internal(format!("stored chat id {:?}: {e}", last.chat_id)),
            )?)),
            _ => None,
        };
        Ok(HistoryPage {
            chats: entries,
            next,
        })
    }
}

fn entry_of(
    item: &std::collections::HashMap<String, AttributeValue>,
) -> Result<HistoryEntry, ApiError> {
    Ok(HistoryEntry {
        chat_id: string_of(item, CHAT_ID)?.to_owned(),
        message: string_of(item, "message")?.to_owned(),
        response: string_of(item, "response")?.to_owned(),
        timestamp: string_of(item, CREATED_AT)?.to_owned(),
        cost: number_of(item, "cost")?,
    })
}
