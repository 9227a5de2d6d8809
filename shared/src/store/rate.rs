//! The per-user chat rate: at most `CHATS_PER_MINUTE` chats a user may
//! start in one clock minute, counted in DynamoDB so every function
//! instance sees the same count.
//!
//! The count lives in the account item, in the write every chat already
//! makes: a map `chat_minutes` of counters named by their minute. The
//! chat's update adds one to this minute's counter (`if_not_exists` starts
//! it at zero) and removes the previous minute's, under the condition that
//! this minute's is below the cap. So a chat the cap refuses changes
//! nothing, a chat the balance refuses is not counted, and a flat chat is
//! one round trip of two items (the account and the chat), as without the
//! cap.
//!
//! An idle gap leaves its last minute's counter behind (the next chat
//! removes only the minute before its own). The condition bounds that: a
//! map of more than [`ROOM`] counters is refused, and the refusal, which
//! hands back the old item, is answered by one more write that replaces
//! the whole map by this minute's counter alone, under the condition that
//! the map is still as read. A map that does not exist yet (an account
//! from before it) is made the same way. The item stays a few bytes larger
//! than without the cap, and within its write unit.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use super::n;
use super::number_of;
use crate::clock::Timestamp;
use crate::error::ApiError;

/// The account's map of per-minute counters.
pub(super) const CHAT_MINUTES: &str = "chat_minutes";

/// Counters the map may hold before a chat rewrites it: this minute's, the
/// previous one's, and one left by an idle gap.
const ROOM: usize = 2;

/// How a chat's write counts it.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Minutes {
    /// This minute's counter plus one, the previous minute's removed.
    Count,
    /// The map as read (`None`: there was none) replaced by this minute's
    /// counter alone.
    Rewrite(Option<HashMap<String, AttributeValue>>),
}

/// The parts of an account update that count a chat: SET and REMOVE
/// clauses, a condition, and their names and values.
pub(super) struct RatePart {
    pub set: String,
    pub remove: Option<String>,
    pub condition: String,
    pub names: Vec<(String, String)>,
    pub values: Vec<(String, AttributeValue)>,
}

fn minute_of(now: Timestamp) -> i64 {
    now.unix_seconds().div_euclid(60)
}

/// The counting part of a chat's update at `now` under `cap` (above 0).
pub(super) fn rate_part(minutes: &Minutes, cap: u32, now: Timestamp) -> RatePart {
    let minute = minute_of(now);
    match minutes {
        Minutes::Count => RatePart {
            set: format!(
                "{CHAT_MINUTES}.#rate_now = if_not_exists({CHAT_MINUTES}.#rate_now, :rate_zero) + :one"
            ),
            remove: Some(format!("{CHAT_MINUTES}.#rate_before")),
            condition: format!(
                "size({CHAT_MINUTES}) <= :rate_room AND (attribute_not_exists({CHAT_MINUTES}.#rate_now) \
                 OR {CHAT_MINUTES}.#rate_now < :rate_cap)"
            ),
            names: vec![
                ("#rate_now".into(), minute.to_string()),
                ("#rate_before".into(), (minute - 1).to_string()),
            ],
            values: vec![
                (":rate_zero".into(), n(0)),
                (":rate_room".into(), n(ROOM)),
                (":rate_cap".into(), n(cap)),
            ],
        },
        Minutes::Rewrite(old) => {
            let so_far = old.as_ref().map_or(0, |map| count_in(map, minute));
            let fresh = AttributeValue::M(HashMap::from([(minute.to_string(), n(so_far + 1))]));
            let (condition, values) = match old {
                None => (
                    format!("attribute_not_exists({CHAT_MINUTES})"),
                    vec![(":rate_fresh".to_owned(), fresh)],
                ),
                Some(map) => (
                    format!("{CHAT_MINUTES} = :rate_old"),
                    vec![
                        (":rate_fresh".to_owned(), fresh),
                        (":rate_old".to_owned(), AttributeValue::M(map.clone())),
                    ],
                ),
            };
            RatePart {
                set: format!("{CHAT_MINUTES} = :rate_fresh"),
                remove: None,
                condition,
                names: Vec::new(),
                values,
            }
        }
    }
}

fn count_in(map: &HashMap<String, AttributeValue>, minute: i64) -> i64 {
    number_of(map, &minute.to_string()).unwrap_or(0)
}

/// What the old `account` says of a chat refused under `cap` at `now`:
/// `Some(next)` when the map, not the cap, refused it (to be sent again
/// with `next`), `None` when the cap did or the map is not the cause.
pub(super) fn rate_retry(
    account: &HashMap<String, AttributeValue>,
    minutes: &Minutes,
    cap: u32,
    now: Timestamp,
) -> Option<Minutes> {
    if cap == 0 || over_cap(account, cap, now) {
        return None;
    }
    let map = account.get(CHAT_MINUTES).and_then(|m| m.as_m().ok());
    let fits = map.is_some_and(|map| map.len() <= ROOM);
    match minutes {
        Minutes::Count => (!fits).then(|| Minutes::Rewrite(map.cloned())),
        // Another chat changed the map since: read it again.
        Minutes::Rewrite(old) => (old.as_ref() != map).then(|| {
            if fits {
                Minutes::Count
            } else {
                Minutes::Rewrite(map.cloned())
            }
        }),
    }
}

/// Whether `account` has had `cap` chats this minute already.
pub(super) fn over_cap(
    account: &HashMap<String, AttributeValue>,
    cap: u32,
    now: Timestamp,
) -> bool {
    cap > 0
        && account
            .get(CHAT_MINUTES)
            .and_then(|m| m.as_m().ok())
            .is_some_and(|map| count_in(map, minute_of(now)) >= i64::from(cap))
}

/// The refusal of a chat over the cap: retry when the minute turns.
pub(super) fn rate_limited(now: Timestamp) -> ApiError {
    let into_minute = now.unix_seconds().rem_euclid(60);
    ApiError::RateLimited {
        retry_after: (60 - into_minute) as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(counters: &[(i64, i64)]) -> HashMap<String, AttributeValue> {
        let map = counters
            .iter()
            .map(|(minute, count)| (minute.to_string(), n(count)))
            .collect();
        HashMap::from([(CHAT_MINUTES.to_owned(), AttributeValue::M(map))])
    }

    #[test]
    fn a_full_minute_is_refused_and_a_crowded_map_rewritten() {
        let now = Timestamp::now();
        let m = minute_of(now);
        assert!(over_cap(&account(&[(m, 3)]), 3, now));
        assert!(!over_cap(&account(&[(m - 1, 3)]), 3, now));
        assert_eq!(
            rate_retry(&account(&[(m, 3)]), &Minutes::Count, 3, now),
            None
        );
        let crowded = account(&[(m - 9, 1), (m - 5, 1), (m - 1, 1)]);
        let map = crowded[CHAT_MINUTES].as_m().unwrap().clone();
        assert_eq!(
            rate_retry(&crowded, &Minutes::Count, 3, now),
            Some(Minutes::Rewrite(Some(map.clone())))
        );
        // The same map again: the rewrite failed for another cause.
        assert_eq!(
            rate_retry(&crowded, &Minutes::Rewrite(Some(map)), 3, now),
            None
        );
        assert_eq!(
            rate_retry(&HashMap::new(), &Minutes::Count, 3, now),
            Some(Minutes::Rewrite(None))
        );
        assert_eq!(rate_retry(&HashMap::new(), &Minutes::Count, 0, now), None);
    }

    #[test]
    fn no_cap_is_never_over_it() {
        let now = Timestamp::now();
        let m = minute_of(now);
        assert!(!over_cap(&account(&[(m, 0)]), 0, now));
        assert!(!over_cap(&account(&[(m, 50)]), 0, now));
        assert!(!over_cap(&HashMap::new(), 0, now));
    }

    #[test]
    fn a_refusal_waits_for_the_next_minute() {
        let retry_after = |second: i64| match rate_limited(
            Timestamp::from_unix_seconds(1_800_000_000 / 60 * 60 + second).unwrap(),
        ) {
            ApiError::RateLimited { retry_after } => retry_after,
            other => panic!("not a rate limit: {other:?}"),
        };
        assert_eq!(retry_after(0), 60);
        assert_eq!(retry_after(15), 45);
        assert_eq!(retry_after(59), 1);
    }
}
