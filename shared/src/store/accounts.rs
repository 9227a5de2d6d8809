//! The users table: one account item per user, which both holds the
//! balance and guards it.
//!
//! `{username, tokens, sessions: {<session id>: expires_at},
//! api_keys: {<key id>: [expires_at, last used day]}, version, created_at}`
//!
//! A session (or an API key) is an entry of the account, so a chat's charge checks the
//! session and the balance in one condition on one item, and a balance is
//! one `GetItem`. Password hashes live in the credentials table, out of
//! reach of every function but register and login.

use crate::credits::Credits;
use std::collections::HashMap;
use std::sync::Mutex;

use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};

use super::key_limits::{charge_part, give_back_part, Window, API_KEYS};
use super::rate::{rate_part, Minutes, CHAT_MINUTES};
use super::retry::{with_retries, worth_retrying, Attempt};
use super::transact::{cancellation_reasons, condition_failed};
use super::{n, number_of, s, storage_error, transient, Item, Store, CREATED_AT, USERNAME};
use crate::clock::Timestamp;
use crate::deadline::Deadline;
use crate::domain::{TokenKind, Username, VerifiedToken};
use crate::error::ApiError;

/// What a chat's write assumes and asks besides the balance: the model it
/// calls and the window its API key's budget counts in (both ignored for a
/// session), and how it counts the chat against the per-minute cap.
pub(super) struct Limits<'a> {
    pub model: &'a str,
    pub window: Window,
    pub minutes: Minutes,
}

/// Live sessions a user may hold at once; a login beyond it ends the
/// session that expires first. Ten devices is generous for a person, and
/// each entry is ~30 bytes, so with the longest username (600 bytes of
/// UTF-8) the account item stays under 1 KB: a chat's write of it costs the
/// minimum 2 write units.
pub const MAX_SESSIONS: usize = 10;

/// The account's balance, in balance tokens.
pub(super) const TOKENS: &str = "tokens";
/// The account's map of live sessions.
const SESSIONS: &str = "sessions";

/// The balance an account item holds.
pub(super) fn balance_of(account: &Item) -> Result<i64, ApiError> {
    number_of(account, TOKENS)
}

/// `#sid` in every expression that names the caller's session entry.
pub(super) const SESSION_NAME: &str = "#sid";

/// Where a token's entry lives in the account, and the path of its expiry
/// there (`keys` is a DynamoDB reserved word, hence `api_keys`): a
/// session's entry is its expiry; an API key's is
/// `[expires_at, last used day]`, so a charge can note the day in the same
/// write that checks the key.
pub(super) fn entry_of(token: &VerifiedToken) -> (&'static str, &'static str) {
    match token.kind() {
        TokenKind::Session => ("sessions", "sessions.#sid"),
        TokenKind::ApiKey => ("api_keys", "api_keys.#sid[0]"),
    }
}

impl Store {
    /// The new account's item, for the registering transaction: the initial
    /// grant and no sessions yet. First writer wins the name.
    pub(super) fn new_account(
        &self,
        username: &Username,
        initial_tokens: u32,
        now: Timestamp,
    ) -> Result<Put, ApiError> {
        Put::builder()
            .table_name(&self.tables.users)
            .item(USERNAME, s(username.as_str()))
            .item(TOKENS, n(initial_tokens))
            // Present from the start, so a login (or a new key) can SET one
            // entry of each.
            .item(SESSIONS, AttributeValue::M(HashMap::new()))
            .item(API_KEYS, AttributeValue::M(HashMap::new()))
            // The per-minute chat counters (see `rate`).
            .item(CHAT_MINUTES, AttributeValue::M(HashMap::new()))
            // Counts the balance's movements, so an audit can tell that
            // none happened while it read the ledger.
            .item("version", n(0))
            .item(CREATED_AT, s(now.iso8601()))
            .condition_expression("attribute_not_exists(username)")
            .build()
            .map_err(ApiError::internal)
    }

    /// Opens the session of a login that got in: `token`'s session is added
    /// to its account in the same transaction that forgets the name's failed
    /// logins (see [`Store::begin_login`]).
    pub async fn open_login_session(
        &self,
        token: &VerifiedToken,
        now: Timestamp,
        deadline: Deadline,
    ) -> Result<(), ApiError> {
        let forget = self.forget_login_failures(token.username())?;
        self.add_session(token, Some(forget), now, deadline).await
    }

    /// Adds `token`'s session to its account, as a login does, without
    /// touching its failures: for tools that start a session of their own.
    pub async fn create_session(
        &self,
        token: &VerifiedToken,
        now: Timestamp,
        deadline: Deadline,
    ) -> Result<(), ApiError> {
        self.add_session(token, None, now, deadline).await
    }

    /// Adds `token`'s session to its account, with `also` in the same
    /// transaction. A full account first drops its expired sessions and, if
    /// that is not enough, the ones that expire first: one write when there
    /// is room, two when there is not.
    async fn add_session(
        &self,
        token: &VerifiedToken,
        also: Option<TransactWriteItem>,
        now: Timestamp,
        deadline: Deadline,
    ) -> Result<(), ApiError> {
        // What the last refusal showed must go to make room; empty at first.
        let evict: Mutex<Vec<String>> = Mutex::default();
        with_retries(deadline, || async {
            let ids = std::mem::take(&mut *evict.lock().unwrap_or_else(|e| e.into_inner()));
            let mut update = format!("SET sessions.{SESSION_NAME} = :expires");
            // The size is read before this write: with the evicted entries
            // gone and the new one in, at most MAX_SESSIONS. The evicted
            // entries must still be there, or a login alongside took them
            // and this one must look again. A disabled account takes none.
            let mut condition =
                "size(sessions) < :room AND attribute_not_exists(disabled)".to_owned();
            let mut account = aws_sdk_dynamodb::types::Update::builder()
                .table_name(&self.tables.users)
                .key(USERNAME, s(token.username().as_str()))
                .expression_attribute_names(SESSION_NAME, token.session_id().as_str())
                .expression_attribute_values(":expires", n(token.expires_at()))
                .expression_attribute_values(":room", n(MAX_SESSIONS + ids.len()))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                );
            for (i, id) in ids.iter().enumerate() {
                let name = format!("#old{i}");
                update.push_str(if i == 0 { " REMOVE " } else { ", " });
                update.push_str(&format!("sessions.{name}"));
                condition.push_str(&format!(" AND attribute_exists(sessions.{name})"));
                account = account.expression_attribute_names(name, id);
            }
            let account = match account
                .update_expression(update)
                .condition_expression(condition)
                .build()
            {
                Ok(account) => account,
                Err(e) => return Attempt::Done(Err(ApiError::internal(e))),
            };
            let mut items = vec![TransactWriteItem::builder().update(account).build()];
            items.extend(also.clone());
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items))
                .send()
                .await;
            let err = match result {
                Ok(_) => return Attempt::Done(Ok(())),
                Err(err) => err,
            };
            let Some(reasons) = cancellation_reasons(&err) else {
                // Sent again when its outcome is unknown: adding the same
                // session twice is the same session.
                return if transient(&err) {
                    Attempt::Retry
                } else {
                    Attempt::Done(Err(storage_error(err)))
                };
            };
            if !condition_failed(&reasons, 0) {
                return if worth_retrying(&reasons) {
                    Attempt::Retry
                } else {
                    Attempt::Done(Err(storage_error(err)))
                };
            }
            let Some(account) = reasons[0].item() else {
                return Attempt::Done(Err(ApiError::internal(
                    "credentials without an account item",
                )));
            };
            if account.contains_key("disabled") {
                return Attempt::Done(Err(ApiError::AccountDisabled));
            }
            // Full: try again, making room from what is there now.
            let ids = evict_ids_to_fit(account, now);
            if ids.is_empty() {
                // Nothing to make room with: no try would differ.
                return Attempt::Done(Err(ApiError::internal(
                    "an account refused a session but holds none to end",
                )));
            }
            *evict.lock().unwrap_or_else(|e| e.into_inner()) = ids;
            Attempt::Retry
        })
        .await
    }

    /// Ends `token`'s session at once; refused if it has ended already. An
    /// API key logging out is revoked, as `DELETE /keys/{id}` would.
    pub async fn end_session(&self, token: &VerifiedToken) -> Result<(), ApiError> {
        if token.kind() == TokenKind::ApiKey {
            return self
                .revoke_key(token.username(), token.session_id().as_str())
                .await;
        }
        let result = self
            .client
            .update_item()
            .table_name(&self.tables.users)
            .key(USERNAME, s(token.username().as_str()))
            .update_expression(format!("REMOVE sessions.{SESSION_NAME}"))
            // Without it, a second logout with the same token would succeed.
            .condition_expression(format!("attribute_exists(sessions.{SESSION_NAME})"))
            .expression_attribute_names(SESSION_NAME, token.session_id().as_str())
            .send()
            .await;
        super::refused_as(result, ApiError::Unauthorized).map(|_| ())
    }

    /// Ends every session and API key of `username` in one write; how many
    /// there were. `None` if there is no such user.
    #[cfg(feature = "operator")]
    pub async fn end_all_sessions(&self, username: &Username) -> Result<Option<usize>, ApiError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.tables.users)
            .key(USERNAME, s(username.as_str()))
            .update_expression("SET sessions = :none, api_keys = :none")
            .condition_expression("attribute_exists(username)")
            .expression_attribute_values(":none", AttributeValue::M(HashMap::new()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedOld)
            .send()
            .await;
        match result {
            Ok(output) => {
                let count = |map: &str| {
                    output
                        .attributes()
                        .and_then(|old| old.get(map))
                        .and_then(|entries| entries.as_m().ok())
                        .map_or(0, HashMap::len)
                };
                Ok(Some(count(SESSIONS) + count(API_KEYS)))
            }
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(None)
            }
            Err(err) => Err(storage_error(err)),
        }
    }

    /// Refuses a caller whose session or key has ended or expired, or
    /// whose account is disabled: one strongly consistent `GetItem` of the
    /// account's entry for the token, for a route that reads nothing else
    /// of it.
    pub async fn require_live_session(
        &self,
        token: &VerifiedToken,
        now: Timestamp,
    ) -> Result<(), ApiError> {
        self.live_account(token, USERNAME, now).await.map(|_| ())
    }

    /// The account of a live session, read with `projection` besides the
    /// session entry; 401 if the session has ended or expired.
    pub(super) async fn live_account(
        &self,
        token: &VerifiedToken,
        projection: &str,
        now: Timestamp,
    ) -> Result<Item, ApiError> {
        let (map, _) = entry_of(token);
        let output = self
            .client
            .get_item()
            .table_name(&self.tables.users)
            .key(USERNAME, s(token.username().as_str()))
            .projection_expression(format!("{projection}, {map}.{SESSION_NAME}, disabled"))
            .expression_attribute_names(SESSION_NAME, token.session_id().as_str())
            .consistent_read(true)
            .send()
            .await
            .map_err(storage_error)?;
        let account = output.item.ok_or(ApiError::Unauthorized)?;
        require_live(&account, token, now)?;
        Ok(account)
    }

    /// The update that charges `cost` in a chat's transaction, if the
    /// caller's session is live and the balance covers it. On refusal the
    /// old item comes back, so the caller tells 401 from 402 without a read.
    pub(super) fn charge(
        &self,
        token: &VerifiedToken,
        cost: Credits,
        limits: &Limits<'_>,
        now: Timestamp,
    ) -> Result<aws_sdk_dynamodb::types::Update, ApiError> {
        self.account_update(token, cost, limits, now, false)
    }

    /// [`Store::charge`] for a hold: the same update also counts one more
    /// open model call in the account (`open_calls`), under the per-user
    /// cap when one is set, so the cap costs no item and no read.
    pub(super) fn charge_for_hold(
        &self,
        token: &VerifiedToken,
        amount: Credits,
        limits: &Limits<'_>,
        now: Timestamp,
    ) -> Result<aws_sdk_dynamodb::types::Update, ApiError> {
        self.account_update(token, amount, limits, now, true)
    }

    fn account_update(
        &self,
        token: &VerifiedToken,
        cost: Credits,
        limits: &Limits<'_>,
        now: Timestamp,
        opens_call: bool,
    ) -> Result<aws_sdk_dynamodb::types::Update, ApiError> {
        let (_, expiry) = entry_of(token);
        let count = if opens_call { ", open_calls :one" } else { "" };
        let mut update = aws_sdk_dynamodb::types::Update::builder()
            .table_name(&self.tables.users)
            .key(USERNAME, s(token.username().as_str()));
        // Also fails when the account is missing: nothing is created.
        let mut condition =
            format!("{expiry} > :now AND tokens >= :cost AND attribute_not_exists(disabled)");
        let mut sets = vec!["tokens = tokens - :cost".to_owned()];
        let mut removes = Vec::new();
        // The key's last used day, its budget and its models, in the same
        // write: no extra item, no read.
        if token.kind() == TokenKind::ApiKey {
            let part = charge_part(limits.model, &limits.window, now);
            condition.push_str(" AND ");
            condition.push_str(&part.condition);
            sets.push("api_keys.#sid[1] = :day".to_owned());
            sets.push(part.set);
            update = part
                .values
                .into_iter()
                .fold(update, |u, (name, value)| {
                    u.expression_attribute_values(name, value)
                })
                .expression_attribute_values(":day", s(now.day()));
        }
        // The per-minute cap, in the same write too (see `rate`).
        if self.chats_per_minute > 0 {
            let part = rate_part(&limits.minutes, self.chats_per_minute, now);
            condition.push_str(" AND ");
            condition.push_str(&part.condition);
            sets.push(part.set);
            removes.extend(part.remove);
            update = part.names.into_iter().fold(update, |u, (name, value)| {
                u.expression_attribute_names(name, value)
            });
            update = part.values.into_iter().fold(update, |u, (name, value)| {
                u.expression_attribute_values(name, value)
            });
        }
        let mut expression = format!("SET {} ADD version :one{count}", sets.join(", "));
        if !removes.is_empty() {
            expression.push_str(&format!(" REMOVE {}", removes.join(", ")));
        }
        update = update.update_expression(expression);
        if opens_call && self.open_calls_per_user > 0 {
            condition.push_str(" AND (attribute_not_exists(open_calls) OR open_calls < :open_cap)");
            update = update.expression_attribute_values(":open_cap", n(self.open_calls_per_user));
        }
        update
            .condition_expression(condition)
            .expression_attribute_names(SESSION_NAME, token.session_id().as_str())
            .expression_attribute_values(":cost", n(cost))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":now", n(now.unix_seconds()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(ApiError::internal)
    }

    /// The update that adds `amount` to `username`'s account, in the
    /// transaction that records why: a hold's unused part or all of it
    /// given back, or an operator's grant. A negative amount (an operator
    /// taking tokens back) takes at most what is there. The account must
    /// exist: nothing is created. It names the balance and the version
    /// alone and hands nothing back, so the sweeper's grant can be limited
    /// to those (see `template.yaml`).
    pub(super) fn credit(
        &self,
        username: &str,
        amount: i64,
    ) -> Result<aws_sdk_dynamodb::types::Update, ApiError> {
        self.credit_builder(username, amount, "")
            .build()
            .map_err(ApiError::internal)
    }

    /// [`Store::credit`] for the close of a hold (`amount` may be 0): the
    /// same write counts the call as no longer open (`open_calls`, which
    /// the sweeper's grant names too).
    pub(super) fn credit_closing_call(
        &self,
        username: &str,
        amount: i64,
    ) -> Result<aws_sdk_dynamodb::types::Update, ApiError> {
        self.credit_builder(username, amount, ", open_calls :minus_one")
            .expression_attribute_values(":minus_one", n(-1))
            .build()
            .map_err(ApiError::internal)
    }

    /// [`Store::credit_closing_call`] that also gives `back` to the
    /// budget of the key `key_id` the hold was taken with at `taken`, if
    /// the key still counts in that window (see `key_limits`).
    pub(super) fn credit_closing_keyed_call(
        &self,
        username: &str,
        amount: i64,
        key_id: &str,
        back: Credits,
        taken: Timestamp,
    ) -> Result<aws_sdk_dynamodb::types::Update, ApiError> {
        let part = give_back_part(taken);
        let builder = self
            .credit_builder(username, amount, ", open_calls :minus_one")
            .update_expression(format!(
                "SET tokens = tokens + :amount, {} ADD version :one, open_calls :minus_one",
                part.set
            ))
            .condition_expression(format!(
                "attribute_exists(username) AND tokens >= :floor AND {}",
                part.condition
            ))
            .expression_attribute_names("#kid", key_id)
            .expression_attribute_values(":minus_one", n(-1))
            .expression_attribute_values(":key_back", n(back));
        part.values
            .into_iter()
            .fold(builder, |b, (name, value)| {
                b.expression_attribute_values(name, value)
            })
            .build()
            .map_err(ApiError::internal)
    }

    /// [`Store::credit`], and on refusal the old item comes back, so the
    /// operator's grant tells a missing account from a short balance.
    #[cfg(feature = "operator")]
    pub(super) fn credit_returning_old(
        &self,
        username: &str,
        amount: i64,
    ) -> Result<aws_sdk_dynamodb::types::Update, ApiError> {
        self.credit_builder(username, amount, "")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(ApiError::internal)
    }

    fn credit_builder(
        &self,
        username: &str,
        amount: i64,
        also: &str,
    ) -> aws_sdk_dynamodb::types::builders::UpdateBuilder {
        aws_sdk_dynamodb::types::Update::builder()
            .table_name(&self.tables.users)
            .key(USERNAME, s(username))
            .update_expression(format!(
                "SET tokens = tokens + :amount ADD version :one{also}"
            ))
            .condition_expression("attribute_exists(username) AND tokens >= :floor")
            .expression_attribute_values(":amount", n(amount))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":floor", n((-amount).max(0)))
    }

    /// `username`'s whole account item, read strongly consistent; `None`
    /// if there is no such account.
    #[cfg(feature = "operator")]
    pub(super) async fn account_item(&self, username: &Username) -> Result<Option<Item>, ApiError> {
        self.item_by_username(&self.tables.users, username.as_str(), None)
            .await
    }

    /// Every account's username, a page at a time: `(names, next start)`.
    #[cfg(feature = "operator")]
    pub async fn accounts_page(
        &self,
        start: Option<String>,
    ) -> Result<(Vec<Username>, Option<String>), ApiError> {
        let page = self
            .client
            .scan()
            .table_name(&self.tables.users)
            .projection_expression("username")
            .set_exclusive_start_key(start.map(|name| {
                std::iter::once((USERNAME.to_owned(), AttributeValue::S(name))).collect()
            }))
            .send()
            .await
            .map_err(storage_error)?;
        let names = page
            .items()
            .iter()
            .filter_map(|item| item.get(USERNAME)?.as_s().ok())
            // The signing key's item is not an account.
            .filter(|name| name.as_str() != super::SIGNING_KEY_ITEM)
            .filter_map(|name| Username::from_stored(name).ok())
            .collect();
        let next = page
            .last_evaluated_key()
            .and_then(|key| key.get(USERNAME)?.as_s().ok().cloned());
        Ok((names, next))
    }

    /// The balance and how many movements it has seen.
    #[cfg(feature = "operator")]
    pub(super) async fn stored_balance(
        &self,
        username: &Username,
    ) -> Result<Option<(i64, i64)>, ApiError> {
        self.item_by_username(
            &self.tables.users,
            username.as_str(),
            Some("tokens, version"),
        )
        .await?
        .map(|item| Ok((balance_of(&item)?, number_of(&item, "version")?)))
        .transpose()
    }

    /// Disables (or enables again) `username`: a disabled account cannot
    /// log in, chat or read, effective with the next request. `false` if
    /// there is no such account.
    #[cfg(feature = "operator")]
    pub async fn set_disabled(
        &self,
        username: &Username,
        disabled: bool,
    ) -> Result<bool, ApiError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.tables.users)
            .key(USERNAME, s(username.as_str()))
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
}

/// An account item that lets `token` in: its session entry is there and
/// has not expired, and the operator has not disabled the account. An entry
/// that is not a number is our bug (500).
pub(super) fn require_live(
    account: &Item,
    token: &VerifiedToken,
    now: Timestamp,
) -> Result<(), ApiError> {
    // Before the session: a disabled user's every request says why.
    if account.contains_key("disabled") {
        return Err(ApiError::AccountDisabled);
    }
    let (map, _) = entry_of(token);
    let entry = account
        .get(map)
        .and_then(|entries| entries.as_m().ok())
        .and_then(|entries| entries.get(token.session_id().as_str()));
    let expires_at = match (token.kind(), entry) {
        (_, None) => return Err(ApiError::Unauthorized),
        (TokenKind::Session, Some(expires_at)) => expires_at,
        (TokenKind::ApiKey, Some(entry)) => entry
            .as_l()
            .ok()
            .and_then(|entry| entry.first())
            .ok_or_else(|| ApiError::internal("a key entry is not [expires_at, day]"))?,
    };
    let expires_at: i64 = expires_at
        .as_n()
        .ok()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| ApiError::internal("a session entry is not a number"))?;
    if expires_at <= now.unix_seconds() {
        return Err(ApiError::Unauthorized);
    }
    Ok(())
}

/// The session ids to remove from `account` so that one more fits: every
/// expired one, then those that expire first.
/// An account's sessions as `(expires_at, session id)`, soonest first; an
/// entry whose expiry cannot be read comes first, as `i64::MIN`.
pub(super) fn sessions_by_expiry(account: &Item) -> Vec<(i64, &String)> {
    let mut sessions: Vec<(i64, &String)> = account
        .get(SESSIONS)
        .and_then(|sessions| sessions.as_m().ok())
        .into_iter()
        .flatten()
        .map(|(id, expires)| {
            let expires = expires.as_n().ok().and_then(|v| v.parse().ok());
            (expires.unwrap_or(i64::MIN), id)
        })
        .collect();
    sessions.sort();
    sessions
}

fn evict_ids_to_fit(account: &Item, now: Timestamp) -> Vec<String> {
    // An entry that cannot be read sorts first, so it is dropped first.
    let sessions = sessions_by_expiry(account);
    let over = (sessions.len() + 1).saturating_sub(MAX_SESSIONS);
    let expired = sessions
        .iter()
        .take_while(|(expires, _)| *expires <= now.unix_seconds())
        .count();
    sessions
        .into_iter()
        .take(over.max(expired))
        .map(|(_, id)| id.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(entries: &[(&str, i64)]) -> Item {
        let sessions = entries
            .iter()
            .map(|(id, expires)| (id.to_string(), n(expires)))
            .collect();
        HashMap::from([(SESSIONS.to_owned(), AttributeValue::M(sessions))])
    }

    #[test]
    fn a_full_account_gives_up_the_sessions_that_expire_first() {
        let now = Timestamp::now().unix_seconds();
        let entries: Vec<(String, i64)> = (0..MAX_SESSIONS as i64)
            .map(|i| (format!("s{i}"), now + 1000 - i))
            .collect();
        let refs: Vec<(&str, i64)> = entries.iter().map(|(id, e)| (id.as_str(), *e)).collect();
        let evicted = evict_ids_to_fit(&account(&refs), Timestamp::now());
        assert_eq!(evicted, [format!("s{}", MAX_SESSIONS - 1)]);
    }

    #[test]
    fn expired_sessions_go_however_many_there_are() {
        let now = Timestamp::now().unix_seconds();
        let evicted = evict_ids_to_fit(
            &account(&[("old", now - 5), ("older", now - 50), ("live", now + 60)]),
            Timestamp::now(),
        );
        assert_eq!(evicted, ["older", "old"]);
    }
}
