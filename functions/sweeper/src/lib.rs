//! The sweeper: gives back every hold whose deadline has passed without a
//! settle, because the chat function that took it died or timed out.
//!
//! Each release is conditional on the hold still being open, so a chat
//! that settles late and the sweeper can never both apply, and a second
//! sweep (or two sweepers at once) gives nothing back twice.

use chat_core::clock::Instant;
use chat_core::store::{Deadline, ReleaseReason};
use chat_core::{ApiError, App};
use serde_json::{json, Value};

/// Holds given back per run at most; the schedule runs again a minute
/// later for any more.
pub const MAX_PER_RUN: usize = 500;

/// What one sweep did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    /// Holds given back by this sweep.
    pub released: usize,
    /// Holds that another writer closed first (a late settle).
    pub closed_meanwhile: usize,
}

impl Swept {
    pub fn json(&self) -> Value {
        json!({"released": self.released, "closed_meanwhile": self.closed_meanwhile})
    }
}

/// Gives back the holds that expired before `now`.
pub async fn sweep(app: &App, now: Instant, deadline: Deadline) -> Result<Swept, ApiError> {
    let mut swept = Swept::default();
    for hold in app.store.expired_holds(now, MAX_PER_RUN).await? {
        if app
            .store
            .release(&hold, ReleaseReason::Expired, deadline)
            .await?
        {
            tracing::info!(user = %hold.username, hold = %hold.hold_id, amount = hold.amount, "expired hold given back");
            swept.released += 1;
        } else {
            // Closed between the index read and the release: settled
            // late, or swept by a run alongside. Nothing to give back.
            swept.closed_meanwhile += 1;
        }
    }
    Ok(swept)
}
