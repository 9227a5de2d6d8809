//! Bounded, jittered retries for DynamoDB transaction conflicts, within the
//! time the function has left.
//!
//! Many concurrent chats of one user touch the same account item, and
//! DynamoDB cancels transactions that collide rather than queueing them. A
//! conflict means nothing was applied, so trying again is always safe, as
//! long as the caller still gets our answer before Lambda's timeout does.

use std::future::Future;
use std::time::Duration;

use aws_sdk_dynamodb::types::CancellationReason;

use crate::deadline::Deadline;
use crate::error::ApiError;

/// Enough for a burst of ~100 simultaneous requests on one user to drain;
/// the worst-case total wait (about 2.5 s) stays inside the function timeout.
pub const MAX_ATTEMPTS: u32 = 10;
const BASE_DELAY_MS: u64 = 10;
const MAX_DELAY_MS: u64 = 500;
/// What one attempt came to.
pub(crate) enum Attempt<T> {
    Done(Result<T, ApiError>),
    /// Nothing was applied (a conflict, throttling): worth another try.
    Retry,
}

/// Runs `attempt` until it is done, retrying with backoff while attempts
/// and time remain; then a 503 that says when to retry. Each attempt is also
/// cut off at the deadline, so a hanging call cannot outlive the function.
pub(crate) async fn with_retries<T, F, Fut>(
    deadline: Deadline,
    mut attempt: F,
) -> Result<T, ApiError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Attempt<T>>,
{
    for tries in 1..=MAX_ATTEMPTS {
        let outcome = match deadline.budget() {
            None => attempt().await,
            Some(budget) => match tokio::time::timeout(budget, attempt()).await {
                Ok(outcome) => outcome,
                Err(_) => return Err(out_of_time()),
            },
        };
        match outcome {
            Attempt::Done(result) => return result,
            Attempt::Retry if tries == MAX_ATTEMPTS => break,
            Attempt::Retry => {
                let delay = backoff_delay(tries);
                if deadline.budget().is_some_and(|budget| budget <= delay) {
                    return Err(out_of_time());
                }
                tokio::time::sleep(delay).await;
            }
        }
    }
    Err(ApiError::Unavailable(
        "conflicts or throttling persisted past the retry budget".into(),
    ))
}

fn out_of_time() -> ApiError {
    ApiError::Unavailable("the invocation's deadline came before DynamoDB's answer".into())
}

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

/// The pause before retry `attempt` (1-based): "full jitter" backoff, a
/// uniform draw up to an exponential cap, which spreads colliding writers
/// apart instead of letting them collide again.
fn backoff_delay(attempt: u32) -> Duration {
    let cap = (BASE_DELAY_MS << attempt.min(16)).min(MAX_DELAY_MS);
    let mut bytes = [0u8; 8];
    // Jitter needs no cryptographic quality; on the (never seen) failure of
    // the OS source, the cap itself is still a valid delay.
    let draw = getrandom::fill(&mut bytes)
        .map(|_| u64::from_le_bytes(bytes))
        .unwrap_or(u64::MAX);
    Duration::from_millis(draw % (cap + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn conflicts_are_retried_until_done() {
        let calls = AtomicU32::new(0);
        let result = with_retries(Deadline::none(), || async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0..=2 => Attempt::Retry,
                _ => Attempt::Done(Ok(7)),
            }
        })
        .await;
        assert_eq!(result.unwrap(), 7);
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn endless_conflicts_end_in_a_503_after_the_attempt_budget() {
        let calls = AtomicU32::new(0);
        let result: Result<(), _> = with_retries(Deadline::none(), || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Attempt::Retry
        })
        .await;
        assert_eq!(result.unwrap_err().code(), "unavailable");
        assert_eq!(calls.load(Ordering::SeqCst), MAX_ATTEMPTS);
    }

    #[tokio::test]
    async fn a_near_deadline_stops_the_retries_early_with_a_503() {
        let deadline = Deadline::at(std::time::Instant::now() + Duration::from_millis(300));
        let started = std::time::Instant::now();
        let calls = AtomicU32::new(0);
        let result: Result<(), _> = with_retries(deadline, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            Attempt::Retry
        })
        .await;
        assert_eq!(result.unwrap_err().code(), "unavailable");
        // 50 ms of budget at 20 ms an attempt: stopped for time, early.
        assert!(calls.load(Ordering::SeqCst) <= 3);
        // Loose: this machine's own pauses are not the code's; ten
        // attempts alone would take 200 ms plus backoff.
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn an_attempt_that_hangs_is_cut_off_at_the_deadline() {
        let deadline = Deadline::at(std::time::Instant::now() + Duration::from_millis(400));
        let started = std::time::Instant::now();
        let result: Result<(), _> = with_retries(deadline, || async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Attempt::Done(Ok(()))
        })
        .await;
        assert_eq!(result.unwrap_err().code(), "unavailable");
        // Cut off near 150 ms, not after the attempt's 30 s; the bound is
        // loose for this machine's own pauses.
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
