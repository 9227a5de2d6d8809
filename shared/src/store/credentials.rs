//! The credentials table: `username` -> argon2id hash. Only register and
//! login may touch it (IAM says so, and a test holds IAM to the code), so no
//! other function can read a password hash, whatever it is made to do.

use aws_sdk_dynamodb::types::{CancellationReason, Put, TransactWriteItem};

use super::transact::condition_failed;
use super::{n, s, storage_error, string_of, Store};
use crate::clock::Timestamp;
use crate::deadline::Deadline;
use crate::domain::Username;
use crate::error::ApiError;

/// What login needs of a user.
pub struct StoredCredentials {
    pub password_hash: String,
    /// Recent wrong passwords, which slow the next logins down.
    pub failures: LoginFailures,
}

impl Store {
    /// Creates a user: the account with its initial grant, the grant's
    /// ledger entry and the credentials, in one transaction, unless the
    /// name is taken. First
    /// writer wins, however many register the same name at once.
    pub async fn create_user(
        &self,
        username: &Username,
        password_hash: String,
        initial_tokens: u32,
        invite: Option<&str>,
        now: Timestamp,
        deadline: Deadline,
    ) -> Result<(), ApiError> {
        let account = self.new_account(username, initial_tokens, now)?;
        let credentials = Put::builder()
            .table_name(&self.tables.credentials)
            .item("username", s(username.as_str()))
            .item("password_hash", s(password_hash))
            .item("created_at", s(now.iso8601()))
            .condition_expression("attribute_not_exists(username)")
            .build()
            .map_err(ApiError::internal)?;
        let grant = self.grant_entry(
            username,
            initial_tokens.into(),
            "registration",
            &uuid::Uuid::now_v7().to_string(),
            now,
        )?;
        // The grant's ledger entry goes with the account it funds.
        let mut items = vec![
            TransactWriteItem::builder().put(account).build(),
            TransactWriteItem::builder().put(credentials).build(),
            TransactWriteItem::builder().put(grant).build(),
        ];
        if let Some(code) = invite {
            items.push(self.spend_invite(code)?);
        }
        self.transact(items, deadline, || (), registration_refused)
            .await
    }

    /// The stored password hash, read strongly consistent so a login right
    /// after registering always finds the user.
    pub async fn find_credentials(
        &self,
        username: &Username,
    ) -> Result<Option<StoredCredentials>, ApiError> {
        let item = self
            .item_by_username(
                &self.tables.credentials,
                username.as_str(),
                Some("password_hash, failures, last_failure_at"),
            )
            .await?;
        item.as_ref()
            .map(|item| {
                let number = |name| {
                    item.get(name)
                        .and_then(|v| v.as_n().ok())
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0)
                };
                Ok(StoredCredentials {
                    password_hash: string_of(item, "password_hash")?.to_owned(),
                    failures: LoginFailures {
                        count: number("failures") as u32,
                        last_at: number("last_failure_at"),
                    },
                })
            })
            .transpose()
    }

    /// Counts one more wrong password for `username` at `now`, on top of
    /// `before` (what the login read): a run of failures that had lapsed
    /// starts again at one. Never creates an item for a name that has none.
    pub async fn record_login_failure(
        &self,
        username: &Username,
        before: &LoginFailures,
        now: i64,
    ) -> Result<(), ApiError> {
        // ADD keeps concurrent failures all counted; a lapsed run is reset.
        let update = if before.current(now) == 0 {
            "SET failures = :one, last_failure_at = :now"
        } else {
            "ADD failures :one SET last_failure_at = :now"
        };
        let result = self
            .client
            .update_item()
            .table_name(&self.tables.credentials)
            .key("username", s(username.as_str()))
            .update_expression(update)
            .condition_expression("attribute_exists(username)")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        super::refused_as(result, ApiError::InvalidCredentials).map(|_| ())
    }

    /// Forgets `username`'s failures after a login that got in.
    pub async fn clear_login_failures(&self, username: &Username) -> Result<(), ApiError> {
        self.client
            .update_item()
            .table_name(&self.tables.credentials)
            .key("username", s(username.as_str()))
            .update_expression("REMOVE failures, last_failure_at")
            .condition_expression("attribute_exists(username)")
            .send()
            .await
            .map(|_| ())
            .map_err(storage_error)
    }
}

/// Wrong passwords in a row that cost nothing: typos.
pub const FREE_FAILURES: u32 = 5;
/// The longest one failure makes the next login wait. A stranger who keeps
/// failing can hold a user up for this long at most, while a guesser gets
/// at most one try per this long (on top of argon2id's cost and the
/// stage's throttling).
pub const MAX_WAIT_SECONDS: i64 = 60;
/// A run of failures lapses after this long without one.
pub const FAILURES_LAPSE_SECONDS: i64 = 900;

/// A user's recent wrong passwords: how many in a row, and when the last.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoginFailures {
    pub count: u32,
    /// Epoch seconds.
    pub last_at: i64,
}

impl LoginFailures {
    /// The failures that still count at `now`.
    pub fn current(&self, now: i64) -> u32 {
        if now - self.last_at >= FAILURES_LAPSE_SECONDS {
            0
        } else {
            self.count
        }
    }

    /// Seconds the next login must wait at `now`, if it must: after
    /// [`FREE_FAILURES`], 1 s, then doubling with each failure up to
    /// [`MAX_WAIT_SECONDS`], counted from the last failure.
    pub fn wait(&self, now: i64) -> Option<i64> {
        let count = self.current(now);
        if count < FREE_FAILURES {
            return None;
        }
        let doublings = (count - FREE_FAILURES).min(16);
        let delay = (1i64 << doublings).min(MAX_WAIT_SECONDS);
        let until = self.last_at + delay;
        (until > now).then_some(until - now)
    }
}

// Positions in the registering transaction.
const GRANT: usize = 2;
const INVITE: usize = 3;

/// A taken name is one refusal; a conflict (two registrations of one name
/// at once) is tried again, and then the first one's put refuses this one.
fn registration_refused(reasons: &[CancellationReason]) -> Option<Result<(), ApiError>> {
    // The grant entry's id is new to this request: taken, it means an
    // earlier send of this same registration went through.
    if condition_failed(reasons, GRANT) {
        return Some(Ok(()));
    }
    // A taken name is said first: the invite was not spent on it.
    if condition_failed(reasons, 0) || condition_failed(reasons, 1) {
        return Some(Err(ApiError::UsernameTaken));
    }
    if condition_failed(reasons, INVITE) {
        return Some(Err(ApiError::InvalidInvite));
    }
    if reasons
        .iter()
        .any(|r| r.code() == Some("ConditionalCheckFailed"))
    {
        return Some(Err(ApiError::UsernameTaken));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn after(count: u32, ago: i64) -> LoginFailures {
        LoginFailures {
            count,
            last_at: NOW - ago,
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
    fn the_wait_runs_from_the_last_failure_and_a_run_lapses() {
        assert_eq!(after(11, 59).wait(NOW), Some(1));
        assert_eq!(after(11, 60).wait(NOW), None);
        assert_eq!(after(11, FAILURES_LAPSE_SECONDS).current(NOW), 0);
        assert_eq!(after(11, FAILURES_LAPSE_SECONDS - 1).current(NOW), 11);
    }
}
