//! A chat's item in the chats table, under its user's partition: the
//! message, the reply, what it cost and was charged for, and its ledger
//! amount (so a flat chat stays one two-item transaction). Saved by a
//! flat charge (`chats`) or a settle (`holds`), listed by `history`.

use aws_sdk_dynamodb::types::{AttributeValue, Put};
use uuid::Uuid;

use super::ledger::AMOUNT;
use super::{n, s, CHAT_ID, CREATED_AT, USERNAME};
use crate::clock::Timestamp;
use crate::credits::Credits;
use crate::domain::ChatMessage;
use crate::error::ApiError;
use crate::pricing::Usage;
use crate::responder::{Finish, ToolCall};

/// A chat about to be saved.
pub struct ChatRecord<'a> {
    /// UUIDv7, so a user's chats sort by time under the table's range key.
    pub chat_id: Uuid,
    /// The catalog id of the model that answered.
    pub model: &'a str,
    pub message: &'a ChatMessage,
    pub response: &'a str,
    /// What a retry under the call's idempotency key is answered with, when
    /// it is not `response`: an embeddings call's vectors, kept on its
    /// marker alone so that the history shows a line, not the numbers.
    pub replay: Option<&'a str>,
    /// The tools the reply called, if it called any.
    pub tool_calls: &'a [ToolCall],
    /// What the chat costs the user, in balance tokens.
    pub cost: Credits,
    /// What the chat was charged for: what the model reported it used,
    /// or the bound of what it read and wrote when it reported nothing.
    pub usage: Usage,
    /// Why the reply ended.
    pub finish: Finish,
    pub created: Timestamp,
}

impl ChatRecord<'_> {
    /// The reply's tool calls as the `tool_calls` attribute holds them
    /// (JSON), or `None` for a reply that called none: the attribute is
    /// then left out, as on every chat from before tools.
    pub(super) fn tool_calls_attribute(&self) -> Option<AttributeValue> {
        if self.tool_calls.is_empty() {
            return None;
        }
        serde_json::to_string(self.tool_calls).ok().map(s)
    }

    /// The chat item. `amount` is its ledger entry, what saving it moves:
    /// minus the cost for a flat charge, what a hold gives back at a settle.
    /// `key_id`: the API key that paid, kept for usage by key.
    pub(super) fn put(
        &self,
        table: &str,
        user: &str,
        amount: i64,
        key_id: Option<&str>,
    ) -> Result<Put, ApiError> {
        let put = Put::builder();
        let put = match key_id {
            Some(id) => put.item("key_id", s(id)),
            None => put,
        };
        let put = put
            .table_name(table)
            .item(USERNAME, s(user))
            .item(CHAT_ID, s(self.chat_id.to_string()))
            .item("message", s(self.message.as_str()))
            .item("response", s(self.response))
            .item("cost", n(self.cost))
            .item("input_tokens", n(self.usage.input_tokens))
            .item("output_tokens", n(self.usage.output_tokens))
            .item("cache_read_tokens", n(self.usage.cache_read_tokens))
            .item("cache_write_tokens", n(self.usage.cache_write_tokens))
            .item("model", s(self.model))
            .item("finish", s(self.finish.as_str()))
            .item(AMOUNT, n(amount))
            .item(CREATED_AT, s(self.created.iso8601()));
        let put = match self.tool_calls_attribute() {
            Some(calls) => put.item("tool_calls", calls),
            None => put,
        };
        put.condition_expression("attribute_not_exists(chat_id)")
            .build()
            .map_err(ApiError::internal)
    }
}
