//! What the operator tool (`chat-ops`) does to accounts, with the
//! operator's own credentials: top-ups, disabling, and a look at one
//! account. Every movement of tokens is a ledger entry in its transaction,
//! keyed by an operation id, so a retried grant applies once.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};

use super::transact::condition_failed;
use super::{n, number_of, s, storage_error, string_of, Store};
use crate::clock::Timestamp;
use crate::deadline::Deadline;
use crate::domain::Username;
use crate::error::ApiError;

/// What a grant came to.
#[derive(Debug, PartialEq, Eq)]
pub enum GrantOutcome {
    Applied,
    /// The operation id was used before, for this amount: nothing now.
    AlreadyApplied,
    /// The operation id was used before, for another amount or user.
    IdReused {
        amount: i64,
    },
    NoAccount,
    /// A negative grant larger than the balance: refused, not clamped.
    WouldGoNegative {
        balance: i64,
    },
}

/// One line of an account's ledger, for `chat-ops show`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerLine {
    pub id: String,
    pub kind: String,
    pub amount: i64,
    pub at: String,
}

/// An account as the operator sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountView {
    pub balance: i64,
    pub disabled: bool,
    /// Expiry (epoch seconds) of each session, soonest first.
    pub sessions: Vec<i64>,
    pub keys: Vec<super::KeyInfo>,
    /// The newest ledger entries, newest first.
    pub recent: Vec<LedgerLine>,
}

/// An operation id: 1-64 of letters, digits and `.-_`, so it can stand in
/// a ledger entry's key as it is.
pub fn valid_operation_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

const ACCOUNT: usize = 0;
const ENTRY: usize = 1;

impl Store {
    /// Adds `amount` (negative: takes it back, never below zero) to
    /// `username`'s balance, with its ledger entry `ledger#grant#<op_id>`,
    /// in one transaction; a retry with the same `op_id` applies nothing.
    pub async fn grant(
        &self,
        username: &Username,
        amount: i64,
        reason: &str,
        op_id: &str,
        deadline: Deadline,
    ) -> Result<GrantOutcome, ApiError> {
        if !valid_operation_id(op_id) {
            return Err(ApiError::invalid_field(
                "operation id",
                "must be 1-64 letters, digits and . - _",
            ));
        }
        let user = username.as_str();
        let credit = Update::builder()
            .table_name(&self.tables.users)
            .key("username", s(user))
            .update_expression("SET tokens = tokens + :amount ADD version :one")
            // A negative grant takes at most what is there.
            .condition_expression("attribute_exists(username) AND tokens >= :floor")
            .expression_attribute_values(":amount", n(amount))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":floor", n((-amount).max(0)))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(ApiError::internal)?;
        let entry = Put::builder()
            .table_name(&self.tables.chats)
            .item("username", s(user))
            .item("chat_id", s(format!("ledger#grant#{op_id}")))
            .item("kind", s("grant"))
            .item("amount", n(amount))
            .item("reason", s(reason))
            .item("created_at", s(Timestamp::now().iso8601()))
            .condition_expression("attribute_not_exists(chat_id)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(ApiError::internal)?;
        let items = vec![
            TransactWriteItem::builder().update(credit).build(),
            TransactWriteItem::builder().put(entry).build(),
        ];
        self.transact(
            items,
            deadline,
            || GrantOutcome::Applied,
            |reasons| {
                // The entry first: a retried grant is answered as applied,
                // even if the balance has since moved below what it would
                // now need.
                if condition_failed(reasons, ENTRY) {
                    let earlier = reasons[ENTRY]
                        .item()
                        .map(|item| number_of(item, "amount"))
                        .transpose();
                    return Some(earlier.map(|earlier| match earlier {
                        Some(earlier) if earlier != amount => {
                            GrantOutcome::IdReused { amount: earlier }
                        }
                        _ => GrantOutcome::AlreadyApplied,
                    }));
                }
                if condition_failed(reasons, ACCOUNT) {
                    return Some(match reasons[ACCOUNT].item() {
                        None => Ok(GrantOutcome::NoAccount),
                        Some(account) => number_of(account, "tokens")
                            .map(|balance| GrantOutcome::WouldGoNegative { balance }),
                    });
                }
                None
            },
        )
        .await
    }

    /// Disables (or enables again) `username`: a disabled account cannot
    /// log in, chat or read, effective with the next request. `false` if
    /// there is no such account.
    pub async fn set_disabled(
        &self,
        username: &Username,
        disabled: bool,
    ) -> Result<bool, ApiError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.tables.users)
            .key("username", s(username.as_str()))
            .condition_expression("attribute_exists(username)");
        request = if disabled {
            request
                .update_expression("SET disabled = :at")
                .expression_attribute_values(":at", s(Timestamp::now().iso8601()))
        } else {
            request.update_expression("REMOVE disabled")
        };
        match request.send().await {
            Ok(_) => Ok(true),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(err) => Err(storage_error(err)),
        }
    }

    /// `username`'s balance, state, sessions and newest `recent` ledger
    /// entries; `None` if there is no such account.
    pub async fn account_view(
        &self,
        username: &Username,
        recent: usize,
    ) -> Result<Option<AccountView>, ApiError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.tables.users)
            .key("username", s(username.as_str()))
            .consistent_read(true)
            .send()
            .await
            .map_err(storage_error)?;
        let Some(account) = output.item else {
            return Ok(None);
        };
        let mut sessions: Vec<i64> = account
            .get("sessions")
            .and_then(|v| v.as_m().ok())
            .into_iter()
            .flatten()
            .filter_map(|(_, expires)| expires.as_n().ok()?.parse().ok())
            .collect();
        sessions.sort();
        Ok(Some(AccountView {
            balance: number_of(&account, "tokens")?,
            disabled: account.contains_key("disabled"),
            sessions,
            keys: self.keys_of(username, &account).await?,
            recent: self.recent_entries(username, recent).await?,
        }))
    }

    async fn recent_entries(
        &self,
        username: &Username,
        recent: usize,
    ) -> Result<Vec<LedgerLine>, ApiError> {
        let mut lines = Vec::new();
        for item in self
            .partition(username, "chat_id, amount, kind, created_at")
            .await?
        {
            if let Some(line) = ledger_line(&item)? {
                lines.push(line);
            }
        }
        // Chats and `ledger#` entries sort apart; their times order them.
        lines.sort_by(|a, b| b.at.cmp(&a.at));
        lines.truncate(recent);
        Ok(lines)
    }
}

fn ledger_line(item: &HashMap<String, AttributeValue>) -> Result<Option<LedgerLine>, ApiError> {
    if !item.contains_key("amount") {
        return Ok(None);
    }
    let kind = item
        .get("kind")
        .and_then(|v| v.as_s().ok())
        .cloned()
        .unwrap_or_else(|| "chat".to_owned());
    Ok(Some(LedgerLine {
        id: string_of(item, "chat_id")?.to_owned(),
        kind,
        amount: number_of(item, "amount")?,
        at: string_of(item, "created_at")?.to_owned(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_ids_are_short_and_plain() {
        for ok in ["a", "2026-11-30.topup_1", &"x".repeat(64)] {
            assert!(valid_operation_id(ok), "{ok}");
        }
        for bad in ["", &"x".repeat(65), "a b", "a#b", "é"] {
            assert!(!valid_operation_id(bad), "{bad}");
        }
    }
}
