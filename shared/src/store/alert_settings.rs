//! The user's balance threshold for alerts (`alert_below`, see
//! [`crate::alerts`]): an attribute of the account item, set by the user
//! (`PATCH /balance/`) or the operator (`chat-ops alert`). Setting it moves
//! no tokens and bumps no `version`: the alert is decided from the stream
//! of the account's writes, not here.

use aws_sdk_dynamodb::types::{ReturnValue, ReturnValuesOnConditionCheckFailure};

use super::accounts::{balance_of, entry_of, require_live, SESSION_NAME};
use super::{n, number_of, s, storage_error, Store, USERNAME};
use crate::alerts::{ALERT_BELOW, MAX_ALERT_BELOW};
use crate::clock::Timestamp;
use crate::domain::{Username, VerifiedToken};
use crate::error::ApiError;

/// A balance and the threshold an alert fires below, as `/balance/`
/// shows them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BalanceView {
    pub tokens: i64,
    pub alert_below: Option<u64>,
}

/// The threshold an item holds, if any; a value that is not a whole
/// number in range is our bug.
pub(super) fn alert_below_of(item: &super::Item) -> Result<Option<u64>, ApiError> {
    if !item.contains_key(ALERT_BELOW) {
        return Ok(None);
    }
    let below = number_of(item, ALERT_BELOW)?;
    u64::try_from(below)
        .ok()
        .filter(|b| *b <= MAX_ALERT_BELOW)
        .map(Some)
        .ok_or_else(|| ApiError::internal("alert_below is out of range"))
}

impl Store {
    /// The caller's balance and threshold: one `GetItem`, as the balance
    /// alone was.
    pub async fn balance_view(
        &self,
        token: &VerifiedToken,
        now: Timestamp,
    ) -> Result<BalanceView, ApiError> {
        let account = self
            .live_account(token, &format!("tokens, {ALERT_BELOW}"), now)
            .await?;
        Ok(BalanceView {
            tokens: balance_of(&account)?,
            alert_below: alert_below_of(&account)?,
        })
    }

    /// Sets (or with `None` clears) the caller's threshold, if their
    /// session is live: one conditional `UpdateItem`, whose refusal hands
    /// back the item so 401 and 403 are told apart without a read. Answers
    /// the balance and threshold as they are after the write.
    pub async fn set_own_alert_below(
        &self,
        token: &VerifiedToken,
        below: Option<u64>,
        now: Timestamp,
    ) -> Result<BalanceView, ApiError> {
        let below = checked(below)?;
        let (_, expiry) = entry_of(token);
        let request = self
            .client
            .update_item()
            .table_name(&self.tables.users)
            .key(USERNAME, s(token.username().as_str()))
            .condition_expression(format!(
                "{expiry} > :now AND attribute_not_exists(disabled)"
            ))
            .expression_attribute_names(SESSION_NAME, token.session_id().as_str())
            .expression_attribute_values(":now", n(now.unix_seconds()))
            // The balance comes back with the write (`tokens = tokens`
            // changes nothing): no read for the answer.
            .return_values(ReturnValue::UpdatedNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        let request = match below {
            Some(below) => request
                .update_expression(format!("SET {ALERT_BELOW} = :below, tokens = tokens"))
                .expression_attribute_values(":below", n(below)),
            None => request.update_expression(format!("SET tokens = tokens REMOVE {ALERT_BELOW}")),
        };
        match request.send().await {
            Ok(output) => {
                let item = output.attributes.unwrap_or_default();
                Ok(BalanceView {
                    tokens: balance_of(&item)?,
                    alert_below: below,
                })
            }
            Err(err) => match err.as_service_error() {
                // No item, an ended session or a disabled account.
                Some(aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(e)) => {
                    match e.item() {
                        Some(account) => {
                            require_live(account, token, now)?;
                            Err(ApiError::Unauthorized)
                        }
                        None => Err(ApiError::Unauthorized),
                    }
                }
                _ => Err(storage_error(err)),
            },
        }
    }

    /// The operator's way to set (or with `None` clear) `username`'s
    /// threshold; `false` if there is no such account.
    pub async fn set_alert_below(
        &self,
        username: &Username,
        below: Option<u64>,
    ) -> Result<bool, ApiError> {
        let below = checked(below)?;
        let request = self
            .client
            .update_item()
            .table_name(&self.tables.users)
            .key(USERNAME, s(username.as_str()))
            .condition_expression("attribute_exists(tokens)");
        let request = match below {
            Some(below) => request
                .update_expression(format!("SET {ALERT_BELOW} = :below"))
                .expression_attribute_values(":below", n(below)),
            None => request.update_expression(format!("REMOVE {ALERT_BELOW}")),
        };
        super::unless_refused(request.send().await).map(|done| done.is_some())
    }
}

/// A threshold within [`MAX_ALERT_BELOW`], or 400 `invalid_field`.
fn checked(below: Option<u64>) -> Result<Option<u64>, ApiError> {
    match below {
        Some(b) if b > MAX_ALERT_BELOW => Err(ApiError::invalid_field(
            ALERT_BELOW,
            format!("must be a whole number from 0 to {MAX_ALERT_BELOW}, or null"),
        )),
        other => Ok(other),
    }
}
