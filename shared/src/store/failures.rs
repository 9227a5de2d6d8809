//! The login slow-down: wrong passwords in a row for a name, one item per
//! name in the credentials table (`~login#<name>`: no username has a `~`),
//! whether or not an account has that name. A name nobody has is counted
//! and slowed down exactly as a real one, so neither the answers nor the
//! work of a login tell a stranger which names exist.
//!
//! A login takes its slot before its password is checked: it counts itself
//! as a failure, with a write conditional on the count it read, and a login
//! that gets in forgets the count in the write that opens its session. So
//! guesses sent at once cannot share a slot: each slot is one write, which
//! only one of them wins. The item expires by TTL once its run has lapsed.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};

use super::{n, s, sha256_hex, Store, USERNAME};
use crate::domain::{LoginName, Username};
use crate::error::ApiError;

const FAILURES_PREFIX: &str = "~login#";

/// Wrong passwords in a row that cost nothing: typos.
pub const FREE_FAILURES: u32 = 5;
/// The longest one failure makes the next login wait. A stranger who keeps
/// failing can hold a user up for this long at most, while a guesser gets
/// at most one try per this long (on top of argon2id's cost, the per-source
/// limit and the stage's throttling).
pub const MAX_WAIT_SECONDS: i64 = 60;
/// A run of failures lapses after this long without one.
pub const FAILURES_LAPSE_SECONDS: i64 = 900;
/// How long an item outlives its run's lapse: DynamoDB's TTL deletes late
/// anyway, and the count reads the lapse, never the TTL.
const KEEP_SECONDS: i64 = 3600;
const MILLIS: i64 = 1000;

/// The item key of `name`'s failures: the name itself, or for a name no
/// account can have, `!` (which no username holds) and its SHA-256, so a
/// string of any length and content is a key of bounded size.
pub(super) fn failures_key(name: &LoginName) -> String {
    match name {
        LoginName::Possible(username) => format!("{FAILURES_PREFIX}{}", username.as_str()),
        LoginName::Impossible(raw) => format!("{FAILURES_PREFIX}!{}", sha256_hex(raw.as_bytes())),
    }
}

/// A name's recent wrong passwords: how many in a row, and when the last.
///
/// Times are in milliseconds: a wait of a second counted from a time cut
/// to whole seconds would last anywhere from nothing to a second, so two
/// names failing side by side could be answered differently.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoginFailures {
    pub count: u32,
    /// Epoch milliseconds.
    pub last_ms: i64,
}

impl LoginFailures {
    /// The failures that still count at `now_ms`.
    pub fn current(&self, now_ms: i64) -> u32 {
        if now_ms - self.last_ms >= FAILURES_LAPSE_SECONDS * MILLIS {
            0
        } else {
            self.count
        }
    }

    /// Whole seconds (rounded up) the next login must wait at `now_ms`, if
    /// it must: after [`FREE_FAILURES`], 1 s, then doubling with each
    /// failure up to [`MAX_WAIT_SECONDS`], counted from the last failure.
    pub fn wait(&self, now_ms: i64) -> Option<u64> {
        let count = self.current(now_ms);
        if count < FREE_FAILURES {
            return None;
        }
        let doublings = (count - FREE_FAILURES).min(16);
        let delay = (1i64 << doublings).min(MAX_WAIT_SECONDS) * MILLIS;
        // A login that read the clock just before another's failure sees
        // that failure ahead of it: its wait is the whole delay, no more.
        let left = (self.last_ms + delay - now_ms).min(delay);
        (left > 0).then(|| left.unsigned_abs().div_ceil(MILLIS.unsigned_abs()))
    }

    /// The failures as stored in `item`; none for no item. A count that
    /// cannot be read is our bug, not a reason to let a guess through.
    pub(super) fn of(item: Option<&HashMap<String, AttributeValue>>) -> Result<Self, ApiError> {
        let Some(item) = item else {
            return Ok(LoginFailures::default());
        };
        let number = |name: &str| {
            item.get(name)
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse::<i64>().ok())
                .ok_or_else(|| ApiError::internal(format!("a login failure count lacks {name}")))
        };
        Ok(LoginFailures {
            count: u32::try_from(number("failures")?)
                .map_err(|_| ApiError::internal("a login failure count is out of range"))?,
            last_ms: number("last_failure_ms")?,
        })
    }
}

impl Store {
    /// The write that takes a login's slot: `username`'s failures become
    /// one more than `seen` (what the login read) at `now_ms`, or one if
    /// `seen`'s run had lapsed, provided they are still exactly `seen`. A
    /// login that loses the race gets the item as it is now, to look again.
    pub(super) fn take_login_slot(
        &self,
        name: &LoginName,
        seen: &LoginFailures,
        now_ms: i64,
    ) -> Result<TransactWriteItem, ApiError> {
        let expires = now_ms.div_euclid(MILLIS) + FAILURES_LAPSE_SECONDS + KEEP_SECONDS;
        let update = Update::builder()
            .table_name(&self.tables.credentials)
            .key(USERNAME, s(failures_key(name)))
            .update_expression("SET failures = :count, last_failure_ms = :now, #ttl = :expires")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":count", n(seen.current(now_ms) + 1))
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":expires", n(expires))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        let update = if *seen == LoginFailures::default() {
            update.condition_expression("attribute_not_exists(failures)")
        } else {
            update
                .condition_expression("failures = :seen AND last_failure_ms = :seen_at")
                .expression_attribute_values(":seen", n(seen.count))
                .expression_attribute_values(":seen_at", n(seen.last_ms))
        };
        Ok(TransactWriteItem::builder()
            .update(update.build().map_err(ApiError::internal)?)
            .build())
    }

    /// The delete that forgets `username`'s failures, in the write of a
    /// login that got in.
    pub(super) fn forget_login_failures(
        &self,
        username: &Username,
    ) -> Result<TransactWriteItem, ApiError> {
        let delete = Delete::builder()
            .table_name(&self.tables.credentials)
            .key(
                "username",
                s(failures_key(&LoginName::Possible(username.clone()))),
            )
            .build()
            .map_err(ApiError::internal)?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;

    fn after(count: u32, ago_ms: i64) -> LoginFailures {
        LoginFailures {
            count,
            last_ms: NOW - ago_ms,
        }
    }

    #[test]
    fn five_failures_are_free_then_the_wait_doubles_up_to_a_minute() {
        assert_eq!(after(4, 0).wait(NOW), None);
        assert_eq!(after(5, 0).wait(NOW), Some(1));
        assert_eq!(after(6, 0).wait(NOW), Some(2));
        assert_eq!(after(9, 0).wait(NOW), Some(16));
        assert_eq!(after(11, 0).wait(NOW), Some(60));
        assert_eq!(after(500, 0).wait(NOW), Some(60));
    }

    #[test]
    fn the_wait_runs_from_the_last_failure_to_the_millisecond_and_a_run_lapses() {
        assert_eq!(after(5, 1).wait(NOW), Some(1));
        assert_eq!(after(5, 999).wait(NOW), Some(1));
        assert_eq!(after(5, 1000).wait(NOW), None);
        assert_eq!(after(11, 58_500).wait(NOW), Some(2));
        assert_eq!(after(11, 60_000).wait(NOW), None);
        // A failure a moment after this login read the clock.
        assert_eq!(after(11, -300).wait(NOW), Some(60));
        let lapse = FAILURES_LAPSE_SECONDS * MILLIS;
        assert_eq!(after(11, lapse).current(NOW), 0);
        assert_eq!(after(11, lapse - 1).current(NOW), 11);
    }

    #[test]
    fn no_item_is_no_failure_and_an_unreadable_one_is_an_error() {
        assert_eq!(LoginFailures::of(None).unwrap(), LoginFailures::default());
        let item = HashMap::from([
            ("failures".to_owned(), n(3)),
            ("last_failure_ms".to_owned(), n(NOW)),
        ]);
        assert_eq!(LoginFailures::of(Some(&item)).unwrap(), after(3, 0));
        let broken = HashMap::from([("failures".to_owned(), s("three"))]);
        assert!(LoginFailures::of(Some(&broken)).is_err());
    }
}
