//! What the operator tool (`chat-ops`) does to accounts, with the
//! operator's own credentials: top-ups, disabling, and a look at one
//! account. Every movement of tokens is a ledger entry in its transaction,
//! keyed by an operation id, so a retried grant applies once.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};

use super::accounts::{balance_of, sessions_by_expiry};
use super::key_limits::API_KEYS;
use super::ledger::{amount_of, kind_of, AMOUNT};
use super::transact::condition_failed;
use super::{n, number_of, s, string_of, Store, CHAT_ID, CREATED_AT, USERNAME};
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
        user: String,
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
    /// The balance an alert fires below, if set.
    pub alert_below: Option<u64>,
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
const OPERATION: usize = 2;

/// An operation's own item in the chats table, `~op#<id>` (no username has
/// a `~`): it names the grant's user and amount, and exists once, so an id
/// applies once across every user, not once per user.
const OPERATION_PREFIX: &str = "~op#";

impl Store {
    /// Adds `amount` (negative: takes it back, never below zero) to
    /// `username`'s balance, with its ledger entry `ledger#grant#<op_id>`
    /// and the operation's own item, in one transaction; a retry with the
    /// same `op_id` applies nothing, for this user or any other.
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
        let now = Timestamp::now();
        let credit = self.credit_returning_old(username.as_str(), amount)?;
        let entry = self.grant_entry(username, amount, reason, op_id, now)?;
        let operation = Put::builder()
            .table_name(&self.tables.chats)
            .item(USERNAME, s(format!("{OPERATION_PREFIX}{op_id}")))
            .item(CHAT_ID, s("grant"))
            .item("user", s(username.as_str()))
            .item("amount", n(amount))
            .item(CREATED_AT, s(now.iso8601()))
            .condition_expression("attribute_not_exists(username)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(ApiError::internal)?;
        let items = vec![
            TransactWriteItem::builder().update(credit).build(),
            TransactWriteItem::builder().put(entry).build(),
            TransactWriteItem::builder().put(operation).build(),
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
                        .map(|item| number_of(item, AMOUNT))
                        .transpose();
                    return Some(earlier.map(|earlier| match earlier {
                        Some(earlier) if earlier != amount => GrantOutcome::IdReused {
                            user: username.as_str().to_owned(),
                            amount: earlier,
                        },
                        _ => GrantOutcome::AlreadyApplied,
                    }));
                }
                // The id was another user's grant (the same user's would
                // have met its own entry above).
                if condition_failed(reasons, OPERATION) {
                    return Some(match reasons[OPERATION].item() {
                        Some(earlier) => string_of(earlier, "user").and_then(|user| {
                            Ok(GrantOutcome::IdReused {
                                user: user.to_owned(),
                                amount: number_of(earlier, "amount")?,
                            })
                        }),
                        None => Err(ApiError::internal(
                            "an operation's item refused a grant but none came back",
                        )),
                    });
                }
                if condition_failed(reasons, ACCOUNT) {
                    return Some(match reasons[ACCOUNT].item() {
                        None => Ok(GrantOutcome::NoAccount),
                        Some(account) => balance_of(account)
                            .map(|balance| GrantOutcome::WouldGoNegative { balance }),
                    });
                }
                None
            },
        )
        .await
    }

    /// `username`'s balance, state, sessions and newest `recent` ledger
    /// entries; `None` if there is no such account.
    pub async fn account_view(
        &self,
        username: &Username,
        recent: usize,
    ) -> Result<Option<AccountView>, ApiError> {
        let Some(account) = self.account_item(username).await? else {
            return Ok(None);
        };
        // An entry that cannot be read is not a session to show.
        let sessions: Vec<i64> = sessions_by_expiry(&account)
            .into_iter()
            .map(|(expires, _)| expires)
            .filter(|expires| *expires != i64::MIN)
            .collect();
        Ok(Some(AccountView {
            balance: balance_of(&account)?,
            disabled: account.contains_key("disabled"),
            alert_below: super::alert_settings::alert_below_of(&account)?,
            sessions,
            keys: self.keys_of(username, &account, Timestamp::now()).await?,
            recent: self.recent_entries(username, recent).await?,
        }))
    }

    /// Every API key still live at `now` (epoch seconds) that was made
    /// before `before`: a paginated scan of the accounts, then each holder's
    /// key details. What a signing key's retirement would end, for the
    /// keys made while it signed.
    pub async fn live_keys_made_before(
        &self,
        before: Timestamp,
        now: i64,
    ) -> Result<Vec<(Username, super::KeyInfo)>, ApiError> {
        let cutoff = before.iso8601();
        let mut found = Vec::new();
        let mut start = None;
        loop {
            let (names, next) = self.accounts_page(start).await?;
            for username in names {
                let Some(account) = self.account_item(&username).await? else {
                    continue;
                };
                let holds_keys = account
                    .get(API_KEYS)
                    .and_then(|keys| keys.as_m().ok())
                    .is_some_and(|keys| !keys.is_empty());
                if !holds_keys {
                    continue;
                }
                for key in self.keys_of(&username, &account, Timestamp::now()).await? {
                    // ISO-8601 in UTC with milliseconds sorts as time does.
                    let live = key.expires_at.is_none_or(|at| at > now);
                    if live && key.created_at < cutoff {
                        found.push((username.clone(), key));
                    }
                }
            }
            start = next;
            if start.is_none() {
                return Ok(found);
            }
        }
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
    let Some(amount) = amount_of(item)? else {
        return Ok(None);
    };
    Ok(Some(LedgerLine {
        id: string_of(item, CHAT_ID)?.to_owned(),
        kind: kind_of(item).unwrap_or("chat").to_owned(),
        amount,
        at: string_of(item, CREATED_AT)?.to_owned(),
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
