//! A login's calls before its password is checked: one read of the name's
//! credentials and failures, then the write that takes the login's slot
//! (and counts the check against its source). The same calls, in the same
//! order, whether or not the name has an account, or could have one.

use std::collections::HashMap;
use std::sync::Mutex;

use aws_sdk_dynamodb::types::KeysAndAttributes;

use super::failures::{failures_key, LoginFailures};
use super::retry::{with_retries, Attempt};
use super::sources::SourceLimit;
use super::transact::condition_failed;
use super::{s, storage_error, string_of, transient, Store, USERNAME};
use crate::clock::Timestamp;
use crate::deadline::Deadline;
use crate::domain::{LoginName, Source};
use crate::error::ApiError;

/// Slots a login may lose to others before it gives up. Each loss means
/// another login of the same name took a slot, and past the free ones
/// every slot makes the next wait, so a login sees a wait long before this.
const MAX_SLOT_TRIES: usize = 8;

use super::Item;

/// What the login may now check its password against.
pub struct LoginSlot {
    /// The stored argon2id hash; `None` for a name nobody has (the login
    /// then checks against a dummy, at the same cost).
    pub password_hash: Option<String>,
}

impl Store {
    /// Takes a slot for one password check of `name` from `source` at
    /// `now`: refused with 429 while the name's failures make logins wait,
    /// or while the source is at its cap, before any password is checked.
    /// The slot counts as a failure until the login gets in.
    pub async fn begin_login(
        &self,
        name: &LoginName,
        source: &Source,
        now: Timestamp,
        deadline: Deadline,
    ) -> Result<LoginSlot, ApiError> {
        let (password_hash, mut failures) = self.login_state(name, deadline).await?;
        for _ in 0..MAX_SLOT_TRIES {
            if let Some(retry_after) = failures.wait(now.unix_millis()) {
                return Err(ApiError::TooManyAttempts { retry_after });
            }
            let slot = self.take_login_slot(name, &failures, now.unix_millis())?;
            let mut items = vec![slot];
            let source_at = match self.count_source(SourceLimit::LoginChecks, source, now)? {
                Some(count) => {
                    items.push(count);
                    Some(1)
                }
                None => None,
            };
            // A send whose outcome is unknown is sent again; if the first
            // one went through, the second finds the count moved and looks
            // again, so a lost answer can only count a login twice, never
            // let two guesses share a slot.
            let outcome = self
                .transact(
                    items,
                    deadline,
                    || None,
                    |reasons| {
                        if source_at.is_some_and(|i| condition_failed(reasons, i)) {
                            return Some(Err(SourceLimit::LoginChecks.refusal(now)));
                        }
                        if condition_failed(reasons, 0) {
                            // Another login took this slot: look again at
                            // the count as it is now.
                            return Some(LoginFailures::of(reasons[0].item()).map(Some));
                        }
                        None
                    },
                )
                .await?;
            match outcome {
                None => return Ok(LoginSlot { password_hash }),
                Some(now_failures) => failures = now_failures,
            }
        }
        Err(ApiError::TooManyAttempts { retry_after: 1 })
    }

    /// `name`'s password hash (if the name has an account) and failures,
    /// in one strongly consistent read, so a login right after registering
    /// always finds the user. A name no account can have has no hash to
    /// read.
    async fn login_state(
        &self,
        name: &LoginName,
        deadline: Deadline,
    ) -> Result<(Option<String>, LoginFailures), ApiError> {
        let table = &self.tables.credentials;
        let key = |name: String| HashMap::from([(USERNAME.to_owned(), s(name))]);
        let keys = KeysAndAttributes::builder()
            .set_keys(Some(
                name.username()
                    .map(|username| key(username.as_str().to_owned()))
                    .into_iter()
                    .chain([key(failures_key(name))])
                    .collect(),
            ))
            .projection_expression("username, password_hash, failures, last_failure_ms")
            .consistent_read(true)
            .build()
            .map_err(ApiError::internal)?;
        // The keys still to read, and the items read so far: a batch may
        // leave keys unprocessed under load, and those are asked for again,
        // within the deadline.
        let state: Mutex<(KeysAndAttributes, Vec<Item>)> = Mutex::new((keys, Vec::new()));
        let lock = || state.lock().unwrap_or_else(|e| e.into_inner());
        with_retries(deadline, || async {
            let pending = lock().0.clone();
            let result = self
                .client
                .batch_get_item()
                .request_items(table, pending)
                .send()
                .await;
            match result {
                Ok(mut output) => {
                    let mut state = lock();
                    if let Some(items) = output.responses.as_mut().and_then(|r| r.remove(table)) {
                        state.1.extend(items);
                    }
                    match output.unprocessed_keys.and_then(|mut u| u.remove(table)) {
                        Some(rest) if !rest.keys().is_empty() => {
                            state.0 = rest;
                            Attempt::Retry
                        }
                        _ => Attempt::Done(Ok(())),
                    }
                }
                Err(err) if transient(&err) => Attempt::Retry,
                Err(err) => Attempt::Done(Err(storage_error(err))),
            }
        })
        .await?;
        let found = std::mem::take(&mut lock().1);
        let named = |name: &str| {
            found.iter().find(|item| {
                item.get(USERNAME)
                    .and_then(|v| v.as_s().ok())
                    .map(String::as_str)
                    == Some(name)
            })
        };
        let password_hash = name
            .username()
            .and_then(|username| named(username.as_str()))
            .map(|item| string_of(item, "password_hash").map(str::to_owned))
            .transpose()?;
        let failures = LoginFailures::of(named(&failures_key(name)))?;
        Ok((password_hash, failures))
    }
}
