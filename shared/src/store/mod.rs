//! DynamoDB access: one module per kind of item, each owning its items'
//! `AttributeValue` mapping and the conditions that guard its writes. A
//! transaction across tables takes each item from the module that owns it.
//!
//! | table | items | module |
//! |---|---|---|
//! | users | accounts: balance, sessions, key entries, disabled | `accounts`, key entries `api_keys` |
//! | users | the token-signing keys (current and previous) | `keys` |
//! | credentials | password hashes | `credentials` |
//! | credentials | failed logins per name, whether or not it has an account | `failures` |
//! | credentials | per-source counts of login checks and sign-ups | `sources` |
//! | credentials | invite codes | `invites` |
//! | chats | a chat's item | `chat_item`, charged by `chats`, read by `history` |
//! | chats | idempotency markers: pending, answered, forgotten | `markers` |
//! | chats | holds, with their hold and release entries | `holds` |
//! | chats | grant entries; a partition read whole | `ledger`, summed by `audit` |
//! | chats | key details | `api_keys` |
//! | users | an API key's budget and models, in its entry | `key_limits` |
//! | users | per-minute chat counts, in the account | `rate` |
//! | users | the balance threshold alerts fire below, in the account | `alert_settings` |
//! | chats | usage: the ledger read by day, model or key | `usage` |
//!
//! `login` composes a login's calls before its password check; `operator`
//! composes them for `chat-ops`, `audit` checks a ledger, and `migrate`
//! upgrades the items of a stack from before the account item; `transact`
//! sends a transaction and `retry` bounds its retries by the deadline.
//!
//! What only the operator and the tests call (those three modules, and the
//! few operator calls of the kinds' modules: accounts disabled, scanned or
//! logged out, keys forgotten, signing keys rotated, invites made) is built
//! with the `operator` feature alone, which no function enables.

mod accounts;
mod alert_settings;
mod api_keys;
#[cfg(feature = "operator")]
mod audit;
mod chat_item;
mod chats;
mod credentials;
mod failures;
mod history;
mod holds;
mod invites;
mod key_limits;
mod keys;
mod ledger;
mod login;
mod markers;
#[cfg(feature = "operator")]
mod migrate;
#[cfg(feature = "operator")]
mod operator;
mod rate;
pub mod retry;
mod sources;
mod transact;
mod usage;

use crate::credits::Credits;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use crate::config::{SourceLimits, Tables};
use crate::error::ApiError;

pub use accounts::MAX_SESSIONS;
pub use alert_settings::BalanceView;
pub use api_keys::{may_manage_keys, KeyInfo, KeyLimits, NewKey, MAX_API_KEYS, NEVER};
#[cfg(feature = "operator")]
pub use audit::Audit;
pub use chat_item::ChatRecord;
pub use chats::ChatOutcome;
pub use failures::{LoginFailures, FAILURES_LAPSE_SECONDS, FREE_FAILURES, MAX_WAIT_SECONDS};
pub use history::{HistoryEntry, HistoryPage};
pub use holds::{
    HeldKey, Hold, HoldOutcome, HoldRequest, ReleaseReason, SweptHold, OPEN_HOLDS_INDEX,
    OPEN_HOLD_SHARDS,
};
pub use invites::INVITE_CODE_PREFIX;
pub use keys::{Rotation, SIGNING_KEY_ITEM};
pub use login::LoginSlot;
pub use markers::SavedChat;
pub use markers::MARKER_PREFIX;
#[cfg(feature = "operator")]
pub use migrate::Migrated;
#[cfg(feature = "operator")]
pub use operator::{valid_operation_id, AccountView, GrantOutcome, LedgerLine};
pub use sources::SourceLimit;
pub use usage::{Usage, UsageGroup, UsageRow};

/// The partition key of every table: a user's name, or a reserved name
/// that no username can be (`~token-signing-key`, `~op#...`, `~invite#...`).
pub const USERNAME: &str = "username";
/// The sort key of the chats table: a chat's UUIDv7, or the prefixed id of
/// a ledger entry (`ledger#...`) or an idempotency marker (`idempotency#...`).
pub const CHAT_ID: &str = "chat_id";
/// When an item was written (RFC 3339, UTC), on every kind that keeps it.
pub const CREATED_AT: &str = "created_at";

/// An item as the SDK reads and writes it.
pub(crate) type Item = std::collections::HashMap<String, AttributeValue>;

/// The DynamoDB client (built once per cold start) and the table names.
#[derive(Clone, Debug)]
pub struct Store {
    client: Client,
    tables: Tables,
    /// Chats a user may start per minute; 0: no cap.
    chats_per_minute: u32,
    /// Model calls a user may have open at once; 0: no cap.
    open_calls_per_user: u32,
    /// Caps per client address on login checks and sign-ups; 0: none.
    source_limits: SourceLimits,
}

impl Store {
    pub fn new(client: Client, tables: Tables) -> Self {
        Store {
            client,
            tables,
            chats_per_minute: 0,
            open_calls_per_user: 0,
            source_limits: SourceLimits::default(),
        }
    }

    /// The same store, capping each user's open model calls (0: no cap).
    pub fn with_open_calls_per_user(mut self, cap: u32) -> Self {
        self.open_calls_per_user = cap;
        self
    }

    /// The same store, capping each user's chats per minute (0: no cap).
    pub fn with_chats_per_minute(mut self, cap: u32) -> Self {
        self.chats_per_minute = cap;
        self
    }

    /// The same store, with these caps per client address (0: none).
    pub fn with_source_limits(mut self, limits: SourceLimits) -> Self {
        self.source_limits = limits;
        self
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn tables(&self) -> &Tables {
        &self.tables
    }
}

/// Error codes DynamoDB uses for load and transient faults: worth a retry by
/// the client, so they become 503 rather than 500.
const TRANSIENT_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "ThrottlingException",
    "InternalServerError",
    "ServiceUnavailable",
    "TransactionInProgressException",
    "TransactionConflictException",
];

/// Maps an SDK failure the caller has no specific meaning for: transient
/// faults (timeouts, unreachable endpoint, throttling) to 503, anything else
/// (a missing table, a malformed request) to 500, since that is our bug.
pub(crate) fn storage_error<E>(err: SdkError<E, HttpResponse>) -> ApiError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    if transient(&err) {
        ApiError::Unavailable(Box::new(err))
    } else {
        ApiError::internal(err)
    }
}

/// A timeout, a lost connection, throttling or the service's own failure:
/// worth trying again later. The request may or may not have been applied.
pub(crate) fn transient<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        // A 5xx is the service's own failure, whatever its code says (DynamoDB
        // Local answers some with codes of its own): worth a retry later.
        SdkError::ServiceError(service) => {
            service.raw().status().is_server_error()
                || err
                    .code()
                    .is_some_and(|code| TRANSIENT_CODES.contains(&code))
        }
        _ => false,
    }
}

/// The result of a conditional single-item write, with `refusal` for a
/// failed condition (what the condition guards against) and the usual
/// mapping for everything else.
pub(crate) fn refused_as<T, E>(
    result: Result<T, SdkError<E, HttpResponse>>,
    refusal: ApiError,
) -> Result<T, ApiError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(output) => Ok(output),
        Err(err) if err.code() == Some("ConditionalCheckFailedException") => Err(refusal),
        Err(err) => Err(storage_error(err)),
    }
}

/// The result of a conditional single-item write: `None` when its
/// condition failed, the usual mapping for everything else.
pub(crate) fn unless_refused<T, E>(
    result: Result<T, SdkError<E, HttpResponse>>,
) -> Result<Option<T>, ApiError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(output) => Ok(Some(output)),
        Err(err) if err.code() == Some("ConditionalCheckFailedException") => Ok(None),
        Err(err) => Err(storage_error(err)),
    }
}

pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(crate) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// Reads a number attribute written by this code; anything else in the
/// table is corruption, reported as a server error.
pub(crate) fn number_of(
    item: &std::collections::HashMap<String, AttributeValue>,
    name: &str,
) -> Result<i64, ApiError> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| {
            ApiError::internal(format!("item attribute {name} is missing or not a number"))
        })
}

pub(crate) fn string_of<'a>(
    item: &'a std::collections::HashMap<String, AttributeValue>,
    name: &str,
) -> Result<&'a str, ApiError> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        .ok_or_else(|| {
            ApiError::internal(format!("item attribute {name} is missing or not a string"))
        })
}

impl Store {
    /// The item keyed `username` in `table`, read strongly consistent (so a
    /// read right after a write sees it), with only `projection` if given;
    /// `None` if there is none.
    async fn item_by_username(
        &self,
        table: &str,
        username: &str,
        projection: Option<&str>,
    ) -> Result<Option<Item>, ApiError> {
        let output = self
            .client
            .get_item()
            .table_name(table)
            .key(USERNAME, s(username))
            .set_projection_expression(projection.map(str::to_owned))
            .consistent_read(true)
            .send()
            .await
            .map_err(storage_error)?;
        Ok(output.item)
    }
}

/// A token amount as DynamoDB's signed arithmetic takes it. Amounts are
/// bounded far below `i64::MAX` by the configuration, so this never fails
/// in practice; if it did, nothing is written.
pub(crate) fn signed(amount: Credits) -> Result<i64, ApiError> {
    amount
        .signed()
        .ok_or_else(|| ApiError::internal(format!("{amount} tokens cannot be recorded")))
}

// SHA-256 as lowercase hex: how a secret or a client's free-form key
// becomes an item key of fixed length and alphabet.
pub(crate) use crate::domain::sha256_hex;
