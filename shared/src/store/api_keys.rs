//! API keys: long-lived tokens for programs, made, listed and revoked by
//! their owner's login session.
//!
//! A key is a signed token of its own kind (`sk-...`, see
//! [`crate::domain::TokenKind`]). What lets it in is its entry in the
//! account item, `api_keys.<key id> = [expires_at, last used day]`, so a chat
//! with a key is the same one transaction as with a session, and noting
//! the day it was used rides in that same write. Its name, prefix and dates
//! are an item of their own in the chats table (`key#<key id>` under the
//! user's partition: after the idempotency markers, so history never lists
//! it, and without an `amount`, so the ledger never counts it), written and
//! deleted in the same transaction as the entry.

use crate::credits::Credits;
use std::collections::HashMap;

use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, Delete, Put, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem, Update,
};

use super::accounts::require_live;
use super::key_limits::{new_entry, KeyEntry, API_KEYS};
use super::ledger::KIND;
use super::transact::condition_failed;
use super::{n, s, storage_error, string_of, Store, CHAT_ID, CREATED_AT, USERNAME};
use crate::clock::Timestamp;
use crate::deadline::Deadline;
use crate::domain::{Budget, TokenKind, Username, VerifiedToken};
use crate::error::ApiError;

/// Keys a user may hold at once. Each entry is ~45 bytes of the account
/// item that every chat rewrites; ten keep it near its 1 KB write unit.
pub const MAX_API_KEYS: usize = 10;

/// A key's expiry when it has none: the token format's field must hold a
/// date, and this one (9999-12-31) never comes.
pub const NEVER: i64 = 253_402_300_799;

const KEY_ITEM_PREFIX: &str = "key#";

/// Reads and writes of one key's change before giving up: each lost one
/// means a chat with the key committed in between.
const UPDATE_TRIES: usize = 5;

/// A key to add: the key itself (only its id is stored), and what its
/// owner will see of it.
pub struct NewKey<'a> {
    pub key: &'a VerifiedToken,
    pub name: &'a str,
    /// The first characters of the key, enough to tell keys apart.
    pub prefix: &'a str,
    pub created: Timestamp,
    /// What the key may spend per period; `None`: up to the balance.
    pub budget: Option<Budget>,
    /// The catalog ids the key may call; `None`: any.
    pub models: Option<&'a [String]>,
}

/// What `PATCH /keys/{id}` sets: each `Some` replaces the key's own (with
/// `Some(None)` removing the limit), each `None` keeps it.
pub struct KeyLimits<'a> {
    pub budget: Option<Option<Budget>>,
    pub models: Option<Option<&'a [String]>>,
}

/// A key as its owner sees it: never the key itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyInfo {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub created_at: String,
    /// Epoch seconds; `None` for a key that never expires.
    pub expires_at: Option<i64>,
    /// The last UTC day a chat was charged with it.
    pub last_used: Option<String>,
    pub budget: Option<Budget>,
    /// Spent in the current period (with no budget: in all).
    pub spent: Credits,
    /// When the budget starts over; `None` without one or for a total.
    pub resets_at: Option<Timestamp>,
    pub models: Option<Vec<String>>,
}

impl KeyInfo {
    fn with_entry(mut self, entry: &KeyEntry, now: Timestamp) -> Self {
        self.last_used = entry.last_used.clone();
        self.budget = entry.budget;
        self.spent = entry.spent_at(now);
        self.resets_at = entry.resets_at(now);
        self.models = entry.models.clone();
        self
    }
}

/// What adding a key came to, short of an error.
enum Created {
    Done,
    /// The account has no `api_keys` map yet.
    NoMap,
}

// Positions in the transactions below.
const ACCOUNT: usize = 0;
const DETAILS: usize = 1;

impl Store {
    /// Adds `new.key` to the account of `owner`, a live session, if the
    /// account holds fewer than [`MAX_API_KEYS`].
    pub async fn create_key(
        &self,
        owner: &VerifiedToken,
        new: &NewKey<'_>,
        deadline: Deadline,
    ) -> Result<(), ApiError> {
        let user = owner.username().as_str();
        let id = new.key.session_id();
        let expires_at = new.key.expires_at();
        let entry = new_entry(expires_at, new.budget, new.models, new.created);
        let account = Update::builder()
            .table_name(&self.tables.users)
            .key(USERNAME, s(user))
            .update_expression("SET api_keys.#kid = :entry")
            .condition_expression(
                "sessions.#sid > :now AND attribute_not_exists(disabled) AND size(api_keys) < :max",
            )
            .expression_attribute_names("#kid", id.as_str())
            .expression_attribute_names("#sid", owner.session_id().as_str())
            .expression_attribute_values(":entry", entry)
            .expression_attribute_values(":now", n(new.created.unix_seconds()))
            .expression_attribute_values(":max", n(MAX_API_KEYS))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(ApiError::internal)?;
        let mut details = Put::builder()
            .table_name(&self.tables.chats)
            .item(USERNAME, s(user))
            .item(CHAT_ID, s(format!("{KEY_ITEM_PREFIX}{}", id.as_str())))
            .item(KIND, s("api_key"))
            .item("name", s(new.name))
            .item("prefix", s(new.prefix))
            .item(CREATED_AT, s(new.created.iso8601()))
            .condition_expression("attribute_not_exists(chat_id)");
        if expires_at < NEVER {
            details = details.item("expires_at", n(expires_at));
        }
        let items = vec![
            TransactWriteItem::builder().update(account).build(),
            TransactWriteItem::builder()
                .put(details.build().map_err(ApiError::internal)?)
                .build(),
        ];
        let judge = |reasons: &[CancellationReason]| {
            // The key is new to this request: finding it saved means an
            // earlier send of this transaction went through.
            if condition_failed(reasons, DETAILS) {
                return Some(Ok(Created::Done));
            }
            if !condition_failed(reasons, ACCOUNT) {
                return None;
            }
            let Some(account) = reasons[ACCOUNT].item() else {
                return Some(Err(ApiError::Unauthorized));
            };
            if let Err(e) = require_live(account, owner, new.created) {
                return Some(Err(e));
            }
            Some(match account.get(API_KEYS) {
                None => Ok(Created::NoMap),
                Some(_) => Err(ApiError::TooManyKeys {
                    limit: MAX_API_KEYS,
                }),
            })
        };
        match self
            .transact(items.clone(), deadline, || Created::Done, judge)
            .await?
        {
            Created::Done => Ok(()),
            // An account made before keys existed: given its map, then
            // the same transaction once more.
            Created::NoMap => {
                self.add_key_map(user).await?;
                match self
                    .transact(items, deadline, || Created::Done, judge)
                    .await?
                {
                    Created::Done => Ok(()),
                    Created::NoMap => Err(ApiError::internal("an account's key map vanished")),
                }
            }
        }
    }

    /// Gives an account made before API keys existed its (empty) map.
    async fn add_key_map(&self, user: &str) -> Result<(), ApiError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.tables.users)
            .key(USERNAME, s(user))
            .update_expression("SET api_keys = :none")
            .condition_expression("attribute_exists(username) AND attribute_not_exists(api_keys)")
            .expression_attribute_values(":none", AttributeValue::M(HashMap::new()))
            .send()
            .await;
        match result {
            // Someone else gave it one first: as good.
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            other => other.map(|_| ()).map_err(storage_error),
        }
    }

    /// The keys of `owner`'s account, oldest first; the account's entries
    /// say which are live and when each was last used.
    pub async fn list_keys(
        &self,
        owner: &VerifiedToken,
        now: Timestamp,
    ) -> Result<Vec<KeyInfo>, ApiError> {
        let account = self.live_account(owner, API_KEYS, now).await?;
        self.keys_of(owner.username(), &account, now).await
    }

    /// Changes the budget and model list of key `key_id` of `owner`'s
    /// account, a live session; the key as it is now. The entry is read,
    /// changed and written back under the condition that it is as read,
    /// so a chat spending meanwhile makes it read again, and no spend is
    /// lost.
    pub async fn update_key(
        &self,
        owner: &VerifiedToken,
        key_id: &str,
        limits: &KeyLimits<'_>,
        now: Timestamp,
    ) -> Result<KeyInfo, ApiError> {
        for _ in 0..UPDATE_TRIES {
            let account = self.live_account(owner, API_KEYS, now).await?;
            let entry = KeyEntry::of(&account, key_id)?.ok_or(ApiError::KeyNotFound)?;
            let budget = limits.budget.unwrap_or(entry.budget);
            let models = match limits.models {
                Some(models) => models,
                None => entry.models.as_deref(),
            };
            let changed = entry.changed(budget, models, now);
            let stored = account
                .get(API_KEYS)
                .and_then(|keys| keys.as_m().ok())
                .and_then(|keys| keys.get(key_id))
                .cloned()
                .ok_or(ApiError::KeyNotFound)?;
            let result = self
                .client
                .update_item()
                .table_name(&self.tables.users)
                .key(USERNAME, s(owner.username().as_str()))
                .update_expression("SET api_keys.#kid = :changed")
                .condition_expression(
                    "sessions.#sid > :now AND attribute_not_exists(disabled) AND api_keys.#kid = :stored",
                )
                .expression_attribute_names("#kid", key_id)
                .expression_attribute_names("#sid", owner.session_id().as_str())
                .expression_attribute_values(":changed", changed)
                .expression_attribute_values(":stored", stored)
                .expression_attribute_values(":now", n(now.unix_seconds()))
                .send()
                .await;
            match result {
                Ok(_) => {
                    return self
                        .list_keys(owner, now)
                        .await?
                        .into_iter()
                        .find(|key| key.id == key_id)
                        .ok_or(ApiError::KeyNotFound)
                }
                // A chat spent, or the key or the session went: read again.
                Err(err)
                    if err
                        .as_service_error()
                        .is_some_and(|e| e.is_conditional_check_failed_exception()) => {}
                Err(err) => return Err(storage_error(err)),
            }
        }
        Err(ApiError::Unavailable(
            "the key kept being used while it was changed; retry".into(),
        ))
    }

    /// The keys `account` (an account item, with its `api_keys`) holds,
    /// with their details, oldest first.
    pub(super) async fn keys_of(
        &self,
        username: &Username,
        account: &HashMap<String, AttributeValue>,
        now: Timestamp,
    ) -> Result<Vec<KeyInfo>, ApiError> {
        let mut keys = Vec::new();
        for item in &self.key_details(username).await? {
            let id = string_of(item, CHAT_ID)?
                .trim_start_matches(KEY_ITEM_PREFIX)
                .to_owned();
            // Details whose entry is gone belong to a key being revoked.
            let Some(entry) = KeyEntry::of(account, &id)? else {
                continue;
            };
            let info = KeyInfo {
                name: string_of(item, "name")?.to_owned(),
                prefix: string_of(item, "prefix")?.to_owned(),
                created_at: string_of(item, CREATED_AT)?.to_owned(),
                expires_at: item
                    .get("expires_at")
                    .and_then(|v| v.as_n().ok())
                    .and_then(|v| v.parse().ok()),
                last_used: None,
                budget: None,
                spent: Credits::ZERO,
                resets_at: None,
                models: None,
                id,
            };
            keys.push(info.with_entry(&entry, now));
        }
        keys.sort_by(|a, b| a.created_at.cmp(&b.created_at));
        Ok(keys)
    }

    /// Revokes key `key_id` of `owner`'s account, a live session: 404 if
    /// there is no such key.
    pub async fn delete_key(
        &self,
        owner: &VerifiedToken,
        key_id: &str,
        now: Timestamp,
    ) -> Result<(), ApiError> {
        let condition =
            "sessions.#sid > :now AND attribute_not_exists(disabled) AND attribute_exists(api_keys.#kid)";
        let account = Update::builder()
            .table_name(&self.tables.users)
            .key(USERNAME, s(owner.username().as_str()))
            .update_expression("REMOVE api_keys.#kid")
            .condition_expression(condition)
            .expression_attribute_names("#kid", key_id)
            .expression_attribute_names("#sid", owner.session_id().as_str())
            .expression_attribute_values(":now", n(now.unix_seconds()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(ApiError::internal)?;
        let items = vec![
            TransactWriteItem::builder().update(account).build(),
            self.delete_details(owner.username().as_str(), key_id)?,
        ];
        self.transact(
            items,
            Deadline::none(),
            || (),
            |reasons| {
                if !condition_failed(reasons, ACCOUNT) {
                    return None;
                }
                let Some(account) = reasons[ACCOUNT].item() else {
                    return Some(Err(ApiError::Unauthorized));
                };
                if let Err(e) = require_live(account, owner, now) {
                    return Some(Err(e));
                }
                Some(Err(ApiError::KeyNotFound))
            },
        )
        .await
    }

    /// Revokes key `key_id` of `username` whatever the caller (the key
    /// itself logging out): 401 if it is already gone.
    pub async fn revoke_key(&self, username: &Username, key_id: &str) -> Result<(), ApiError> {
        let account = Update::builder()
            .table_name(&self.tables.users)
            .key(USERNAME, s(username.as_str()))
            .update_expression("REMOVE api_keys.#kid")
            .condition_expression("attribute_exists(api_keys.#kid)")
            .expression_attribute_names("#kid", key_id)
            .build()
            .map_err(ApiError::internal)?;
        let items = vec![
            TransactWriteItem::builder().update(account).build(),
            self.delete_details(username.as_str(), key_id)?,
        ];
        self.transact(
            items,
            Deadline::none(),
            || (),
            |reasons| condition_failed(reasons, ACCOUNT).then_some(Err(ApiError::Unauthorized)),
        )
        .await
    }

    /// Deletes the details of every key of `username` (after `chat-ops
    /// revoke` emptied the account's map); how many there were.
    #[cfg(feature = "operator")]
    pub async fn forget_keys(&self, username: &Username) -> Result<usize, ApiError> {
        let details = self.key_details(username).await?;
        for item in &details {
            self.client
                .delete_item()
                .table_name(&self.tables.chats)
                .key(USERNAME, s(username.as_str()))
                .key(CHAT_ID, s(string_of(item, CHAT_ID)?))
                .send()
                .await
                .map_err(storage_error)?;
        }
        Ok(details.len())
    }

    /// The details items of `username`'s keys (a user has at most
    /// [`MAX_API_KEYS`] and a few being revoked: one page).
    async fn key_details(
        &self,
        username: &Username,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, ApiError> {
        let output = self
            .client
            .query()
            .table_name(&self.tables.chats)
            .key_condition_expression("username = :user AND begins_with(chat_id, :prefix)")
            .expression_attribute_values(":user", s(username.as_str()))
            .expression_attribute_values(":prefix", s(KEY_ITEM_PREFIX))
            .consistent_read(true)
            .send()
            .await
            .map_err(storage_error)?;
        Ok(output.items.unwrap_or_default())
    }

    fn delete_details(&self, user: &str, key_id: &str) -> Result<TransactWriteItem, ApiError> {
        let delete = Delete::builder()
            .table_name(&self.tables.chats)
            .key(USERNAME, s(user))
            .key(CHAT_ID, s(format!("{KEY_ITEM_PREFIX}{key_id}")))
            .build()
            .map_err(ApiError::internal)?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }
}

/// Whether a token may manage keys: only a login session may, so a key
/// that leaks cannot make more keys its revocation would miss.
pub fn may_manage_keys(token: &VerifiedToken) -> Result<(), ApiError> {
    match token.kind() {
        TokenKind::Session => Ok(()),
        TokenKind::ApiKey => Err(ApiError::SessionRequired),
    }
}
