//! The audit of the ledger (operator only): one user's balance beside the
//! sum of their ledger's amounts, read so that a user chatting meanwhile
//! cannot make a sound ledger look unsound. `chat-ops audit`,
//! `audit-tables` and the tests' `assert_ledger_balances` run it.

use super::ledger::amount_of;
use super::{holds, Store};
use crate::domain::Username;
use crate::error::ApiError;

/// One user's balance beside the sum of their ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Audit {
    pub username: Username,
    pub balance: i64,
    pub ledger_sum: i64,
    pub entries: usize,
    /// Holds not yet settled or released (their amounts are in the sum).
    pub open_holds: usize,
}

impl Audit {
    pub fn balances(&self) -> bool {
        self.balance == self.ledger_sum
    }
}

impl Store {
    /// `username`'s balance and ledger, read strongly consistent. `None`
    /// if there is no such account. The balance is read before and after
    /// the ledger, and the reading starts again if it moved in between, so
    /// a user chatting meanwhile cannot make a sound ledger look unsound.
    pub async fn audit(&self, username: &Username) -> Result<Option<Audit>, ApiError> {
        for _ in 0..5 {
            let Some((balance, version)) = self.stored_balance(username).await? else {
                return Ok(None);
            };
            let (ledger_sum, entries, open_holds) = self.ledger_sum(username).await?;
            // The version, not the balance: a hold and its release leave
            // the balance as it was, but not the ledger a read crossed.
            if self.stored_balance(username).await? == Some((balance, version)) {
                return Ok(Some(Audit {
                    username: username.clone(),
                    balance,
                    ledger_sum,
                    entries,
                    open_holds,
                }));
            }
        }
        Err(ApiError::Unavailable(
            "the balance kept moving while its ledger was read".into(),
        ))
    }

    /// The sum of `username`'s ledger amounts, how many entries, and how
    /// many holds are open.
    pub(super) async fn ledger_sum(
        &self,
        username: &Username,
    ) -> Result<(i64, usize, usize), ApiError> {
        let (mut sum, mut entries, mut open) = (0i64, 0usize, 0usize);
        for item in self.partition(username, "amount, #state, kind").await? {
            // Idempotency markers carry no amount: they move nothing.
            if let Some(amount) = amount_of(&item)? {
                sum = sum
                    .checked_add(amount)
                    .ok_or_else(|| ApiError::internal("a ledger sum overflowed"))?;
                entries += 1;
            }
            if holds::is_open(&item) {
                open += 1;
            }
        }
        Ok((sum, entries, open))
    }
}
