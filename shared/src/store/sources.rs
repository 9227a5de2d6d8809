//! Per-source limits on the two routes anyone may call: password checks
//! per client address and minute on `/login/`, accounts made per client
//! address and hour on `/register/`. One item per address and window in the
//! credentials table (`~ip#<route>#<address>#<window>`), out of reach of
//! every function but register and login, expiring by TTL.
//!
//! Each count is one more item in a write the route makes anyway (the
//! login's slot, the registering transaction), under the condition that it
//! is below the cap: so it costs no round trip, a refused request changes
//! nothing, and one client at its cap leaves every other client its own.

use aws_sdk_dynamodb::types::{TransactWriteItem, Update};

use super::{n, s, Store};
use crate::clock::Timestamp;
use crate::config::SourceLimits;
use crate::domain::Source;
use crate::error::ApiError;

const SOURCE_PREFIX: &str = "~ip#";
/// How long a window's count is kept after its window: DynamoDB's TTL may
/// lag, and the count reads its window's name, never the TTL.
const KEEP_SECONDS: i64 = 3600;

/// What a source's count limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceLimit {
    /// Password checks a client address may cause per minute.
    LoginChecks,
    /// Accounts a client address may make per hour.
    Registrations,
}

impl SourceLimit {
    fn route(self) -> &'static str {
        match self {
            SourceLimit::LoginChecks => "login",
            SourceLimit::Registrations => "register",
        }
    }

    fn window_seconds(self) -> i64 {
        match self {
            SourceLimit::LoginChecks => 60,
            SourceLimit::Registrations => 3600,
        }
    }

    /// The refusal: retry when the window turns.
    pub(super) fn refusal(self, now: Timestamp) -> ApiError {
        let window = self.window_seconds();
        ApiError::IpRateLimited {
            retry_after: (window - now.unix_seconds().rem_euclid(window)) as u64,
        }
    }
}

impl SourceLimit {
    /// This limit's cap in `limits`.
    fn cap(self, limits: &SourceLimits) -> u32 {
        match self {
            SourceLimit::LoginChecks => limits.login_checks_per_minute,
            SourceLimit::Registrations => limits.registrations_per_hour,
        }
    }
}

impl Store {
    /// The update that counts one more `limit` for `source` at `now`, if
    /// that limit is on: refused (and so is its whole transaction) once the
    /// window's count has reached the cap.
    pub(super) fn count_source(
        &self,
        limit: SourceLimit,
        source: &Source,
        now: Timestamp,
    ) -> Result<Option<TransactWriteItem>, ApiError> {
        let cap = limit.cap(&self.source_limits);
        if cap == 0 {
            return Ok(None);
        }
        let window = now.unix_seconds().div_euclid(limit.window_seconds());
        let update = Update::builder()
            .table_name(&self.tables.credentials)
            .key(
                "username",
                s(format!(
                    "{SOURCE_PREFIX}{}#{source}#{window}",
                    limit.route()
                )),
            )
            .update_expression("ADD #count :one SET #ttl = :expires")
            .expression_attribute_names("#count", "count")
            .expression_attribute_names("#ttl", "ttl")
            .condition_expression("attribute_not_exists(#count) OR #count < :cap")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":cap", n(cap))
            .expression_attribute_values(
                ":expires",
                n((window + 1) * limit.window_seconds() + KEEP_SECONDS),
            )
            .build()
            .map_err(ApiError::internal)?;
        Ok(Some(TransactWriteItem::builder().update(update).build()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_says_when_the_window_turns() {
        let at = |seconds| Timestamp::from_unix_seconds(seconds).unwrap();
        // 1_800_000_000 is a whole minute and a whole hour after the epoch.
        let minute = 1_800_000_000;
        assert_eq!(
            SourceLimit::LoginChecks.refusal(at(minute + 15)).code(),
            "ip_rate_limited"
        );
        let retry = |limit: SourceLimit, t| match limit.refusal(at(t)) {
            ApiError::IpRateLimited { retry_after } => retry_after,
            other => panic!("{other:?}"),
        };
        assert_eq!(retry(SourceLimit::LoginChecks, minute + 15), 45);
        assert_eq!(retry(SourceLimit::LoginChecks, minute), 60);
        let hour = 1_800_000_000;
        assert_eq!(retry(SourceLimit::Registrations, hour + 3599), 1);
    }
}
