//! The credentials table: `username` -> argon2id hash. Only register and
//! login may touch it (IAM says so, and a test holds IAM to the code), so no
//! other function can read a password hash, whatever it is made to do. The
//! same table keeps invite codes (`invites`), each name's failed logins
//! (`failures`) and the per-address counts (`sources`), under keys that
//! start with `~`, which no username does.

use aws_sdk_dynamodb::types::{CancellationReason, Put, TransactWriteItem};

use super::sources::SourceLimit;
use super::transact::condition_failed;
use super::{s, Store, CREATED_AT, USERNAME};
use crate::clock::Timestamp;
use crate::deadline::Deadline;
use crate::domain::{Source, Username};
use crate::error::ApiError;

impl Store {
    /// Creates a user: the account with its initial grant, the grant's
    /// ledger entry and the credentials, in one transaction, unless the
    /// name is taken. First writer wins, however many register the same
    /// name at once. With `invite`, the code is spent in the same
    /// transaction; the registration counts against `source`'s sign-ups.
    ///
    /// A refused registration says why in this order: a bad invite code,
    /// the source's cap, a taken name. So in invite mode a name is never
    /// confirmed to someone without a valid code.
    #[allow(clippy::too_many_arguments)]
    pub async fn create_user(
        &self,
        username: &Username,
        password_hash: String,
        initial_tokens: u32,
        invite: Option<&str>,
        source: &Source,
        now: Timestamp,
        deadline: Deadline,
    ) -> Result<(), ApiError> {
        let account = self.new_account(username, initial_tokens, now)?;
        let credentials = Put::builder()
            .table_name(&self.tables.credentials)
            .item(USERNAME, s(username.as_str()))
            .item("password_hash", s(password_hash))
            .item(CREATED_AT, s(now.iso8601()))
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
        let mut items = Vec::new();
        let mut at = Positions::default();
        if let Some(code) = invite {
            at.invite = Some(items.len());
            items.push(self.spend_invite(code)?);
        }
        if let Some(count) = self.count_source(SourceLimit::Registrations, source, now)? {
            at.source = Some(items.len());
            items.push(count);
        }
        at.account = items.len();
        items.push(TransactWriteItem::builder().put(account).build());
        items.push(TransactWriteItem::builder().put(credentials).build());
        // The grant's ledger entry goes with the account it funds.
        at.grant = items.len();
        items.push(TransactWriteItem::builder().put(grant).build());
        self.transact(
            items,
            deadline,
            || (),
            |reasons| registration_refused(reasons, &at, now),
        )
        .await
    }
}

/// Where each item sits in the registering transaction.
#[derive(Default)]
struct Positions {
    invite: Option<usize>,
    source: Option<usize>,
    /// The account; the credentials follow it.
    account: usize,
    grant: usize,
}

/// Why a registration was refused, if a condition says; a conflict (two
/// registrations of one name at once) is tried again, and then the first
/// one's put refuses this one.
fn registration_refused(
    reasons: &[CancellationReason],
    at: &Positions,
    now: Timestamp,
) -> Option<Result<(), ApiError>> {
    let failed = |index: Option<usize>| index.is_some_and(|i| condition_failed(reasons, i));
    // The grant entry's id is new to this request: taken, it means an
    // earlier send of this same registration went through.
    if failed(Some(at.grant)) {
        return Some(Ok(()));
    }
    // The code first: without a valid one, nothing is said of the name.
    if failed(at.invite) {
        return Some(Err(ApiError::InvalidInvite));
    }
    if failed(at.source) {
        return Some(Err(SourceLimit::Registrations.refusal(now)));
    }
    // A taken name: the invite, if any, was not spent on it.
    if failed(Some(at.account)) || failed(Some(at.account + 1)) {
        return Some(Err(ApiError::UsernameTaken));
    }
    None
}
