//! Bounded, jittered retries for DynamoDB transaction conflicts.
//!
//! Many concurrent chats of one user touch the same user item, and DynamoDB
//! cancels transactions that collide rather than queueing them. A conflict
//! means nothing was applied, so trying again is always safe.

use std::time::Duration;

use aws_sdk_dynamodb::types::CancellationReason;

/// Enough for a burst of ~100 simultaneous requests on one user to drain;
/// the worst-case total wait (about 2.5 s) stays inside the function timeout.
pub const MAX_ATTEMPTS: u32 = 10;
const BASE_DELAY_MS: u64 = 10;
const MAX_DELAY_MS: u64 = 500;

/// Cancellation reasons that mean "nothing applied, try again": another
/// transaction held an item, or the table is throttling.
pub fn worth_retrying(reasons: &[CancellationReason]) -> bool {
    reasons.iter().any(|reason| {
        matches!(
            reason.code(),
            Some(
                "TransactionConflict"
                    | "ThrottlingError"
                    | "ProvisionedThroughputExceeded"
                    | "RequestLimitExceeded"
            )
        )
    })
}

/// Sleeps before attempt `attempt` (1-based, so the first retry is 1):
/// "full jitter" backoff, a uniform draw up to an exponential cap, which
/// spreads colliding writers apart instead of letting them collide again.
pub async fn backoff(attempt: u32) {
    let cap = (BASE_DELAY_MS << attempt.min(16)).min(MAX_DELAY_MS);
    let mut bytes = [0u8; 8];
    // Jitter needs no cryptographic quality; on the (never seen) failure of
    // the OS source, the cap itself is still a valid delay.
    let draw = getrandom::fill(&mut bytes)
        .map(|_| u64::from_le_bytes(bytes))
        .unwrap_or(u64::MAX);
    tokio::time::sleep(Duration::from_millis(draw % (cap + 1))).await;
}
