//! Usage: a user's ledger movements in a time window, grouped by day,
//! model or API key, read from the ledger itself so the totals are exact:
//! the sum of `net` over all groups is the sum of the ledger's amounts
//! dated in the window, and over all time it is the balance.
//!
//! Every entry counts where it is dated (`created_at`): a hold on the day
//! it was taken, its settle (what came back) on the day it closed. Chats,
//! holds and their closes name their model and, when an API key paid,
//! the key; grants name neither (`null` groups), nor do entries written
//! before they were recorded.

use std::collections::BTreeMap;

use super::ledger::{amount_of, kind_of};
use super::{string_of, Store, CREATED_AT};
use crate::clock::Timestamp;
use crate::domain::{Username, VerifiedToken};
use crate::error::ApiError;

/// What usage is grouped by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UsageGroup {
    Day,
    Model,
    Key,
}

impl UsageGroup {
    pub fn parse(raw: &str) -> Option<UsageGroup> {
        match raw {
            "day" => Some(UsageGroup::Day),
            "model" => Some(UsageGroup::Model),
            "key" => Some(UsageGroup::Key),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            UsageGroup::Day => "day",
            UsageGroup::Model => "model",
            UsageGroup::Key => "key",
        }
    }
}

/// One group's movements; `granted - charged` is the sum of its ledger
/// amounts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UsageRow {
    /// The day (`2026-12-02`), model id or key id; `None` for entries
    /// that name no model or key.
    pub group: Option<String>,
    /// What chats took, net of what their holds gave back.
    pub charged: i64,
    /// What grants gave (or, negative, took back).
    pub granted: i64,
    /// How many ledger entries.
    pub entries: u64,
}

impl UsageRow {
    /// The sum of the group's ledger amounts.
    pub fn net(&self) -> i64 {
        self.granted - self.charged
    }

    fn add(&mut self, amount: i64, grant: bool) -> Result<(), ApiError> {
        let overflow = || ApiError::internal("a usage sum overflowed");
        if grant {
            self.granted = self.granted.checked_add(amount).ok_or_else(overflow)?;
        } else {
            self.charged = self.charged.checked_sub(amount).ok_or_else(overflow)?;
        }
        self.entries += 1;
        Ok(())
    }
}

/// A user's usage in `[from, to)`, every group, sorted by group (`null`
/// first), with the totals.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Usage {
    pub rows: Vec<UsageRow>,
    pub total: UsageRow,
}

impl Store {
    /// [`Store::usage_of`] the caller, whose session or key must be live.
    pub async fn usage(
        &self,
        token: &VerifiedToken,
        from: Timestamp,
        to: Timestamp,
        group: UsageGroup,
    ) -> Result<Usage, ApiError> {
        self.live_account(token, "username", Timestamp::now())
            .await?;
        self.usage_of(token.username(), from, to, group).await
    }

    /// `username`'s ledger movements dated in `[from, to)`, grouped by
    /// `group`. One strongly consistent read of the partition, a page at a
    /// time; the window is a filter on the entries' ISO-8601 dates, which
    /// sort as the instants they name.
    pub async fn usage_of(
        &self,
        username: &Username,
        from: Timestamp,
        to: Timestamp,
        group: UsageGroup,
    ) -> Result<Usage, ApiError> {
        let (from, to) = (from.iso8601(), to.iso8601());
        let mut groups: BTreeMap<Option<String>, UsageRow> = BTreeMap::new();
        let mut total = UsageRow::default();
        for item in self
            .partition(username, "amount, kind, created_at, model, key_id")
            .await?
        {
            // Markers, key details and counts move nothing.
            let Some(amount) = amount_of(&item)? else {
                continue;
            };
            let at = string_of(&item, CREATED_AT)?;
            if at < from.as_str() || at >= to.as_str() {
                continue;
            }
            let grant = kind_of(&item) == Some("grant");
            let name = |attribute: &str| {
                string_of(&item, attribute)
                    .ok()
                    .filter(|v| !v.is_empty())
                    .map(str::to_owned)
            };
            let key = match group {
                UsageGroup::Day => at.get(..10).map(str::to_owned),
                UsageGroup::Model => name("model"),
                UsageGroup::Key => name("key_id"),
            };
            let row = groups.entry(key.clone()).or_insert_with(|| UsageRow {
                group: key,
                ..UsageRow::default()
            });
            row.add(amount, grant)?;
            total.add(amount, grant)?;
        }
        Ok(Usage {
            rows: groups.into_values().collect(),
            total,
        })
    }
}
