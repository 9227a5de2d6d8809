//! The sweeper: closes every hold whose deadline has passed without a
//! settle, because the chat function that took it died, or its settle could
//! not commit and left what the chat owes on the hold.
//!
//! A hold with what is owed recorded is settled at that (the chat saved,
//! the rest given back); one with nothing recorded is charged its whole
//! amount, the bound of what the model could have done (see
//! docs/billing.md). Each close is conditional on the hold still being
//! open, so a chat that settles late and the sweeper can never both apply,
//! and a second sweep (or two sweepers at once) charges nothing twice.

use chat_core::clock::Timestamp;
use chat_core::deadline::Deadline;
use chat_core::metrics::MoneyEvent;
use chat_core::store::{Hold, SweptHold};
use chat_core::{ApiError, App};
use futures_util::future::join_all;
use serde_json::{json, Value};

/// Holds closed per run at most; the schedule runs again a minute later
/// for any more.
pub const MAX_PER_RUN: usize = 500;

/// Holds closed at once: enough to clear a backlog within one run without
/// a burst of writes on DynamoDB.
pub const BATCH: usize = 10;

/// A batch is not started with less time than this left in the run.
const BATCH_TIME: std::time::Duration = std::time::Duration::from_secs(5);

/// What one sweep did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    /// Holds given back: their model refused the call, and the release
    /// could not commit then.
    pub released: usize,
    /// Holds settled at what their chat recorded it owes.
    pub settled_owed: usize,
    /// Holds with nothing recorded, charged in full.
    pub charged_at_bound: usize,
    /// Holds that another writer closed first (a late settle).
    pub closed_meanwhile: usize,
    /// Holds whose close failed; the next run tries them again.
    pub failed: usize,
    /// Expired holds left for the next run: the run's maximum or its time
    /// was reached.
    pub left: usize,
}

impl Swept {
    pub fn json(&self) -> Value {
        json!({
            "released": self.released,
            "settled_owed": self.settled_owed,
            "charged_at_bound": self.charged_at_bound,
            "closed_meanwhile": self.closed_meanwhile,
            "failed": self.failed,
            "left": self.left,
        })
    }

    /// Holds this sweep closed.
    pub fn closed(&self) -> usize {
        self.released + self.settled_owed + self.charged_at_bound
    }
}

/// Closes the holds that expired before `now`, a batch at a time, from
/// every shard in turn.
pub async fn sweep(app: &App, now: Timestamp, deadline: Deadline) -> Result<Swept, ApiError> {
    let mut swept = Swept::default();
    let expired = app.store.expired_holds(now, MAX_PER_RUN).await?;
    let mut batches = expired.chunks(BATCH);
    for batch in batches.by_ref() {
        let outcomes = join_all(batch.iter().map(|hold| sweep_one(app, hold, deadline))).await;
        for outcome in outcomes {
            match outcome {
                Some(SweptHold::SettledOwed { .. }) => swept.settled_owed += 1,
                Some(SweptHold::Released) => swept.released += 1,
                Some(SweptHold::SettledAtBound { .. }) => swept.charged_at_bound += 1,
                Some(SweptHold::ClosedMeanwhile) => swept.closed_meanwhile += 1,
                None => swept.failed += 1,
            }
        }
        let short = deadline
            .instant()
            .is_some_and(|at| at.saturating_duration_since(std::time::Instant::now()) < BATCH_TIME);
        if short {
            break;
        }
    }
    swept.left = batches.map(<[Hold]>::len).sum();
    app.count("sweeper", MoneyEvent::HoldSwept, swept.closed() as u64);
    app.count(
        "sweeper",
        MoneyEvent::ChargedAtBound,
        swept.charged_at_bound as u64,
    );
    Ok(swept)
}

/// Closes one hold; `None` if that failed (logged).
async fn sweep_one(app: &App, hold: &Hold, deadline: Deadline) -> Option<SweptHold> {
    match app.store.sweep_hold(hold, deadline).await {
        Ok(outcome) => {
            match outcome {
                SweptHold::SettledOwed { cost } => {
                    tracing::warn!(user = %hold.username, hold = %hold.hold_id, cost = %cost, "an expired hold settled at what its chat owes");
                }
                SweptHold::SettledAtBound { cost } => {
                    tracing::error!(user = %hold.username, hold = %hold.hold_id, cost = %cost, "an expired hold with nothing recorded charged in full");
                }
                SweptHold::Released => {
                    tracing::warn!(user = %hold.username, hold = %hold.hold_id, "an expired hold of a refused call given back");
                }
                // Closed between the index read and now: settled late,
                // or swept by a run alongside.
                SweptHold::ClosedMeanwhile => {}
            }
            Some(outcome)
        }
        // One hold that cannot be closed must not keep the others: the run
        // goes on, and reports itself failed at the end.
        Err(e) => {
            tracing::error!(user = %hold.username, hold = %hold.hold_id, error = %e, "an expired hold could not be closed");
            None
        }
    }
}
