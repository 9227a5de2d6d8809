//! Upgrading the tables of a stack deployed before the account item and the
//! ledger (`chat-ops migrate`), one users item at a time, each step a
//! conditional write, so a run can stop anywhere and be run again:
//!
//! 1. An item that still holds a password hash (the users table of before
//!    the account item: `{username, user_id, password_hash, tokens,
//!    created_at}`) has its hash moved to the credentials table, out of
//!    reach of every function but register and login, and becomes an
//!    account (no sessions, no keys, version 0), in one transaction.
//! 2. An account whose partition holds no ledger entry (its chats of
//!    before the ledger carry a `cost`, not an `amount`) gets one opening
//!    entry, `ledger#grant#opening`, for its balance, in a transaction
//!    conditional on that balance, so balance = ledger sum from then on.
//!
//! The sessions of before (a table of their own, which the update deletes)
//! are not carried over: those users log in again.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};

use super::transact::condition_failed;
use super::{n, s, storage_error, string_of, Store, CREATED_AT, SIGNING_KEY_ITEM, USERNAME};
use crate::clock::Timestamp;
use crate::deadline::Deadline;
use crate::domain::Username;
use crate::error::ApiError;

use super::accounts::balance_of;
use super::Item;

/// The opening entry's operation id: one per account, so a second run
/// finds it and writes none.
const OPENING: &str = "opening";

/// What migrating one users item came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Migrated {
    /// Already an account with a ledger: nothing to do.
    Current,
    /// What was done: the hash moved, an opening entry written, or both.
    Done {
        moved_hash: bool,
        opened_ledger: bool,
    },
    /// Left as it is, and why (for the operator to look at).
    Skipped(String),
}

impl Store {
    /// Every users item (the signing keys' excepted) as stored, a page at a
    /// time: `(items, next start)`.
    pub async fn users_page(
        &self,
        start: Option<String>,
    ) -> Result<(Vec<Item>, Option<String>), ApiError> {
        let page = self
            .client
            .scan()
            .table_name(&self.tables.users)
            .consistent_read(true)
            .set_exclusive_start_key(start.map(|name| {
                std::iter::once((USERNAME.to_owned(), AttributeValue::S(name))).collect()
            }))
            .send()
            .await
            .map_err(storage_error)?;
        let items = page
            .items()
            .iter()
            .filter(|item| {
                item.get(USERNAME)
                    .and_then(|v| v.as_s().ok())
                    .map(String::as_str)
                    != Some(SIGNING_KEY_ITEM)
            })
            .cloned()
            .collect();
        let next = page
            .last_evaluated_key()
            .and_then(|key| key.get(USERNAME)?.as_s().ok().cloned());
        Ok((items, next))
    }

    /// Brings one users item, as [`Store::users_page`] read it, up to the
    /// account item and the ledger.
    pub async fn migrate(&self, item: &Item, deadline: Deadline) -> Result<Migrated, ApiError> {
        let name = string_of(item, USERNAME)?;
        let Ok(username) = Username::from_stored(name) else {
            return Ok(Migrated::Skipped(format!("{name:?} is not a username")));
        };
        let mut moved_hash = false;
        if item.contains_key("password_hash") {
            if let Some(skipped) = self.move_hash(&username, item, deadline).await? {
                return Ok(Migrated::Skipped(skipped));
            }
            moved_hash = true;
        }
        let opened_ledger = self.open_ledger(&username, deadline).await?;
        Ok(if moved_hash || opened_ledger {
            Migrated::Done {
                moved_hash,
                opened_ledger,
            }
        } else {
            Migrated::Current
        })
    }

    /// Step 1: the hash to the credentials table, the item an account.
    /// `Some(why)` when it was left as it is.
    async fn move_hash(
        &self,
        username: &Username,
        item: &Item,
        deadline: Deadline,
    ) -> Result<Option<String>, ApiError> {
        let hash = string_of(item, "password_hash")?;
        let created_at = item
            .get(CREATED_AT)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_else(|| Timestamp::now().iso8601());
        let credentials = Put::builder()
            .table_name(&self.tables.credentials)
            .item(USERNAME, s(username.as_str()))
            .item("password_hash", s(hash))
            .item(CREATED_AT, s(created_at))
            .condition_expression("attribute_not_exists(username)")
            .build()
            .map_err(ApiError::internal)?;
        let empty = AttributeValue::M(HashMap::new());
        let account = Update::builder()
            .table_name(&self.tables.users)
            .key(USERNAME, s(username.as_str()))
            .update_expression(
                "SET sessions = if_not_exists(sessions, :empty), \
                 api_keys = if_not_exists(api_keys, :empty), \
                 version = if_not_exists(version, :zero) \
                 REMOVE password_hash, user_id",
            )
            // The hash read is still the one there: nothing changed since.
            .condition_expression("password_hash = :hash")
            .expression_attribute_values(":empty", empty)
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":hash", s(hash))
            .build()
            .map_err(ApiError::internal)?;
        let items = vec![
            TransactWriteItem::builder().put(credentials).build(),
            TransactWriteItem::builder().update(account).build(),
        ];
        self.transact(
            items,
            deadline,
            || None,
            |reasons| {
                if condition_failed(reasons, 0) {
                    return Some(Ok(Some(
                        "its name has credentials already; the item keeps its hash".to_owned(),
                    )));
                }
                if condition_failed(reasons, 1) {
                    return Some(Ok(Some(
                        "the item changed while it was read; run migrate again".to_owned(),
                    )));
                }
                None
            },
        )
        .await
    }

    /// Step 2: an opening entry for an account whose ledger is empty.
    /// `true` if one was written now.
    async fn open_ledger(&self, username: &Username, deadline: Deadline) -> Result<bool, ApiError> {
        let (_, entries, _) = self.ledger_sum(username).await?;
        if entries > 0 {
            return Ok(false);
        }
        let Some(account) = self.account_item(username).await? else {
            return Ok(false);
        };
        let balance = balance_of(&account)?;
        let entry = self.grant_entry(
            username,
            balance,
            "opening balance: the balance before the ledger",
            OPENING,
            Timestamp::now(),
        )?;
        // The balance read is still the balance: the entry matches it.
        let account = Update::builder()
            .table_name(&self.tables.users)
            .key(USERNAME, s(username.as_str()))
            .update_expression("SET version = if_not_exists(version, :zero) + :one")
            .condition_expression("tokens = :balance")
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":balance", n(balance))
            .build()
            .map_err(ApiError::internal)?;
        let items = vec![
            TransactWriteItem::builder().update(account).build(),
            TransactWriteItem::builder().put(entry).build(),
        ];
        self.transact(
            items,
            deadline,
            || true,
            |reasons| {
                // Written by an earlier run (or an earlier send of this one).
                if condition_failed(reasons, 1) {
                    return Some(Ok(false));
                }
                if condition_failed(reasons, 0) {
                    return Some(Err(ApiError::Unavailable(
                        "the balance moved while its opening entry was written; run migrate again"
                            .into(),
                    )));
                }
                None
            },
        )
        .await
    }
}
