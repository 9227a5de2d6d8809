//! Idempotency markers: one item per idempotency key a user sent, in the
//! chats table under the user's partition (sort key `idempotency#<hash>`),
//! that makes a retry of the same request replay its answer rather than
//! pay again. Every marker item is written, answered, deleted and read
//! here; the transactions that carry one (a flat chat's charge, a hold, a
//! settle, a release) take it from these builders.
//!
//! A flat chat writes its marker answered at once. A paid model call's
//! hold writes it pending (a retry meanwhile is refused as in progress);
//! the settle answers it, and a release deletes it (the call has nothing to
//! replay, so the client may try the key again). Answering and deleting are
//! conditioned on the hold that took it, so a marker outlives no call but
//! its own.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, Delete, Put, ReturnValuesOnConditionCheckFailure, Update,
};

use super::chat_item::ChatRecord;
use super::{n, number_of, s, sha256_hex, string_of, CHAT_ID, CREATED_AT, USERNAME};
use crate::clock::Timestamp;
use crate::domain::{IdempotencyKey, KeyedRequest};
use crate::error::ApiError;
use crate::pricing::Usage;
use crate::responder::{Finish, ToolCall};

/// Sort-key prefix of the idempotency markers. It sorts after every UUID
/// (they start with a hex digit), so a range condition
/// `chat_id < "idempotency#"` reads chats without their markers.
pub const MARKER_PREFIX: &str = "idempotency#";

/// A marker's `state`: answered, or taken by a chat whose model is still
/// writing (only with a paid model).
const DONE: &str = "done";
const PENDING: &str = "pending";

/// A chat saved earlier under the same idempotency key: what its reply was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SavedChat {
    pub chat_id: String,
    pub response: String,
    pub timestamp: String,
    /// Why the reply ended (`stop` for markers written before it was kept).
    pub finish: Finish,
    /// What it was charged for, if the marker kept it.
    pub usage: Option<Usage>,
    /// The tools the reply called (none on markers from before tools).
    pub tool_calls: Vec<ToolCall>,
}

/// The sort key of an idempotency key's marker under its user: hashed, so
/// any printable key maps to one fixed-length, fixed-alphabet item key.
pub(crate) fn marker_id(key: &IdempotencyKey) -> String {
    format!("{MARKER_PREFIX}{}", sha256_hex(key.as_str().as_bytes()))
}

/// A flat chat's marker, answered with `chat` at once. Refused if the key
/// was used before, handing back the earlier marker (no second read).
pub(super) fn answered(
    table: &str,
    user: &str,
    keyed: &KeyedRequest,
    chat: &ChatRecord,
) -> Result<Put, ApiError> {
    let put = Put::builder()
        .table_name(table)
        .item(USERNAME, s(user))
        .item(CHAT_ID, s(marker_id(&keyed.key)))
        .item("state", s(DONE))
        .item("chat_ref", s(chat.chat_id.to_string()))
        .item("request_hash", s(&keyed.request_hash))
        .item("response", s(chat.replay.unwrap_or(chat.response)))
        .item("finish", s(chat.finish.as_str()))
        .item("input_tokens", n(chat.usage.input_tokens))
        .item("output_tokens", n(chat.usage.output_tokens))
        .item("cache_read_tokens", n(chat.usage.cache_read_tokens))
        .item("cache_write_tokens", n(chat.usage.cache_write_tokens))
        .item(CREATED_AT, s(chat.created.iso8601()));
    let put = match chat.tool_calls_attribute() {
        Some(calls) => put.item("tool_calls", calls),
        None => put,
    };
    refused_with_the_earlier(put)
}

/// A hold's marker, pending until the settle answers it.
pub(super) fn pending(
    table: &str,
    user: &str,
    marker_id: &str,
    hold_id: &str,
    request_hash: &str,
    now: Timestamp,
) -> Result<Put, ApiError> {
    let put = Put::builder()
        .table_name(table)
        .item(USERNAME, s(user))
        .item(CHAT_ID, s(marker_id))
        .item("state", s(PENDING))
        .item("hold_ref", s(hold_id))
        .item("request_hash", s(request_hash))
        .item(CREATED_AT, s(now.iso8601()));
    refused_with_the_earlier(put)
}

fn refused_with_the_earlier(
    put: aws_sdk_dynamodb::types::builders::PutBuilder,
) -> Result<Put, ApiError> {
    put.condition_expression("attribute_not_exists(chat_id)")
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .build()
        .map_err(ApiError::internal)
}

/// The settle's answer to the pending marker of `hold_id`: the chat it
/// saved, as a retry replays it.
pub(super) fn answer(
    table: &str,
    user: &str,
    marker_id: &str,
    hold_id: &str,
    chat: &ChatRecord,
) -> Result<Update, ApiError> {
    Update::builder()
        .table_name(table)
        .key(USERNAME, s(user))
        .key(CHAT_ID, s(marker_id))
        .update_expression(
            "SET #state = :done, chat_ref = :chat, #response = :response, \
             #finish = :finish, input_tokens = :input, output_tokens = :output, \
             cache_read_tokens = :cache_read, cache_write_tokens = :cache_write, \
             created_at = :at, tool_calls = :tool_calls",
        )
        .condition_expression("hold_ref = :hold")
        .expression_attribute_names("#state", "state")
        .expression_attribute_names("#response", "response")
        .expression_attribute_names("#finish", "finish")
        .expression_attribute_values(":done", s(DONE))
        .expression_attribute_values(":chat", s(chat.chat_id.to_string()))
        .expression_attribute_values(":response", s(chat.replay.unwrap_or(chat.response)))
        .expression_attribute_values(":finish", s(chat.finish.as_str()))
        .expression_attribute_values(":input", n(chat.usage.input_tokens))
        .expression_attribute_values(":output", n(chat.usage.output_tokens))
        .expression_attribute_values(":cache_read", n(chat.usage.cache_read_tokens))
        .expression_attribute_values(":cache_write", n(chat.usage.cache_write_tokens))
        .expression_attribute_values(":at", s(chat.created.iso8601()))
        .expression_attribute_values(":hold", s(hold_id))
        .expression_attribute_values(
            ":tool_calls",
            chat.tool_calls_attribute().unwrap_or_else(|| s("[]")),
        )
        .build()
        .map_err(ApiError::internal)
}

/// The release's delete of the marker of `hold_id`.
pub(super) fn forget(
    table: &str,
    user: &str,
    marker_id: &str,
    hold_id: &str,
) -> Result<Delete, ApiError> {
    Delete::builder()
        .table_name(table)
        .key(USERNAME, s(user))
        .key(CHAT_ID, s(marker_id))
        .condition_expression("hold_ref = :hold")
        .expression_attribute_values(":hold", s(hold_id))
        .build()
        .map_err(ApiError::internal)
}

/// The marker a refused put handed back.
pub(super) fn marker_of(
    reasons: &[CancellationReason],
    index: usize,
) -> Result<&HashMap<String, AttributeValue>, ApiError> {
    reasons[index].item().ok_or_else(|| {
        ApiError::internal("an idempotency marker refused a put but came back empty")
    })
}

/// The earlier chat a marker stands for, if it was for the same request.
pub(super) fn replay_of(
    marker: &HashMap<String, AttributeValue>,
    request_hash: &str,
) -> Result<SavedChat, ApiError> {
    if string_of(marker, "request_hash")? != request_hash {
        return Err(ApiError::IdempotencyKeyReused);
    }
    // Markers from before holds existed carry no state: they are answered.
    if marker
        .get("state")
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        == Some(PENDING)
    {
        return Err(ApiError::IdempotencyKeyInProgress);
    }
    // Markers from before usage (or cache counts) was kept have none.
    let count = |name: &str| number_of(marker, name).map(i64::unsigned_abs);
    let usage = match (count("input_tokens"), count("output_tokens")) {
        (Ok(input_tokens), Ok(output_tokens)) => Some(Usage {
            input_tokens,
            output_tokens,
            cache_read_tokens: count("cache_read_tokens").unwrap_or(0),
            cache_write_tokens: count("cache_write_tokens").unwrap_or(0),
        }),
        _ => None,
    };
    Ok(SavedChat {
        chat_id: string_of(marker, "chat_ref")?.to_owned(),
        response: string_of(marker, "response")?.to_owned(),
        timestamp: string_of(marker, CREATED_AT)?.to_owned(),
        finish: string_of(marker, "finish")
            .ok()
            .and_then(Finish::parse)
            .unwrap_or(Finish::Stop),
        usage,
        // Written by this code as JSON; unreadable would be a bug, and
        // the replay still has its text.
        tool_calls: string_of(marker, "tool_calls")
            .ok()
            .and_then(|json| serde_json::from_str(json).ok())
            .unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_id_is_fixed_length_and_sorts_after_any_uuid() {
        let id = marker_id(&IdempotencyKey::parse("any key at all").unwrap());
        assert_eq!(id.len(), MARKER_PREFIX.len() + 64);
        assert!(id.as_str() > "ffffffff-ffff-7fff-bfff-ffffffffffff");
        assert!(id.starts_with("idempotency"));
    }
}
