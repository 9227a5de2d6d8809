//! The sweeper: gives back every hold whose deadline has passed without a
//! settle, because the chat function that took it died or timed out.
//!
//! Each release is conditional on the hold still being open, so a chat
//! that settles late and the sweeper can never both apply, and a second
//! sweep (or two sweepers at once) gives nothing back twice.

use chat_core::clock::Timestamp;
use chat_core::deadline::Deadline;
use chat_core::store::ReleaseReason;
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
    /// Holds whose release failed; the next run tries them again.
    pub failed: usize,
}

impl Swept {
    pub fn json(&self) -> Value {
        json!({
            "released": self.released,
            "closed_meanwhile": self.closed_meanwhile,
            "failed": self.failed,
        })
    }
}

/// Gives back the holds that expired before `now`.
pub async fn sweep(app: &App, now: Timestamp, deadline: Deadline) -> Result<Swept, ApiError> {
    let mut swept = Swept::default();
    for hold in app.store.expired_holds(now, MAX_PER_RUN).await? {
        match app
            .store
            .release(&hold, ReleaseReason::Expired, deadline)
            .await
        {
            Ok(true) => {
                tracing::info!(user = %hold.username, hold = %hold.hold_id, amount = hold.amount, "expired hold given back");
                swept.released += 1;
            }
            // Closed between the index read and the release: settled
            // late, or swept by a run alongside. Nothing to give back.
            Ok(false) => swept.closed_meanwhile += 1,
            // One hold that cannot be released must not keep the others:
            // the run goes on, and reports itself failed at the end.
            Err(e) => {
                tracing::error!(user = %hold.username, hold = %hold.hold_id, error = %e, "an expired hold could not be given back");
                swept.failed += 1;
            }
        }
    }
    Ok(swept)
}
