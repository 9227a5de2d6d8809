//! The time an invocation has left: Lambda's deadline, carried from the
//! request to every call that may wait (the DynamoDB retries, a model's
//! stream), so that our answer, not Lambda's timeout, ends a slow request.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Kept free before the deadline to write the 503 and its metrics line:
/// an answer of ours, not Lambda's timeout and API Gateway's bare 5xx.
const ANSWER_MARGIN: Duration = Duration::from_millis(250);

/// When the invocation must have answered: Lambda's deadline, or none (a
/// test, a tool).
#[derive(Clone, Copy, Debug, Default)]
pub struct Deadline(Option<std::time::Instant>);

impl Deadline {
    pub fn none() -> Self {
        Deadline(None)
    }

    pub fn at(instant: std::time::Instant) -> Self {
        Deadline(Some(instant))
    }

    /// From Lambda's deadline, milliseconds since the epoch. One already
    /// past is no deadline at all: Lambda never hands out a spent one, while
    /// `cargo lambda watch` sends a fixed 600000 (ten minutes after 1970).
    pub fn from_epoch_millis(deadline_ms: u64) -> Self {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        match deadline_ms.checked_sub(now_ms) {
            Some(left) if left > 0 => {
                Deadline::at(std::time::Instant::now() + Duration::from_millis(left))
            }
            _ => Deadline::none(),
        }
    }

    /// When it falls, if there is one.
    pub fn instant(&self) -> Option<std::time::Instant> {
        self.0
    }

    /// Time left for work, the answer's margin kept back; `None` without a
    /// deadline.
    pub(crate) fn budget(&self) -> Option<Duration> {
        self.0.map(|at| {
            at.saturating_duration_since(std::time::Instant::now())
                .saturating_sub(ANSWER_MARGIN)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lambda_deadline_in_epoch_millis_becomes_time_left() {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let budget = Deadline::from_epoch_millis(now_ms + 3_000)
            .budget()
            .unwrap();
        assert!(budget > Duration::from_millis(2_500) && budget <= Duration::from_millis(2_750));
        // What `cargo lambda watch` sends, and anything else already past.
        assert!(Deadline::from_epoch_millis(600_000).budget().is_none());
        assert!(Deadline::from_epoch_millis(now_ms - 1_000)
            .budget()
            .is_none());
    }
}
