//! Settings read once per cold start from the environment.
//!
//! Every value is checked here, so a misconfigured function fails at start-up
//! with a message naming the variable instead of misbehaving on a request.

use std::time::Duration;

use crate::cors::AllowedOrigins;
use crate::pricing::{Pricing, UsagePrices};

/// Names of the three DynamoDB tables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tables {
    /// One account item per user: balance and live sessions.
    pub users: String,
    /// Password hashes: only register and login may touch this table.
    pub credentials: String,
    pub chats: String,
}

impl Tables {
    /// Tables named `<prefix>users`, `<prefix>credentials`, `<prefix>chats`:
    /// what `make run` creates locally and what each test uses to stay
    /// isolated.
    pub fn with_prefix(prefix: &str) -> Self {
        Tables {
            users: format!("{prefix}users"),
            credentials: format!("{prefix}credentials"),
            chats: format!("{prefix}chats"),
        }
    }
}

/// What the operator tunes; see `template.yaml` Parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub tables: Tables,
    /// How chats are priced: `CHAT_COST` each, or a model's usage.
    pub pricing: Pricing,
    /// How long a hold lasts before the sweeper gives it back: longer than
    /// the chat function's timeout, so a live chat always settles first.
    pub hold_ttl: Duration,
    /// Tokens a new user starts with.
    pub initial_tokens: u32,
    /// How long a login token stays valid.
    pub session_ttl: Duration,
    /// CloudWatch namespace of the functions' embedded metrics.
    pub metrics_namespace: String,
    /// Chats (and completions) one user may start per minute; 0: no cap.
    pub chats_per_minute: u32,
    /// Model calls one user may have open at once, on every route together
    /// (holds not yet settled); 0: no cap.
    pub open_calls_per_user: u32,
    /// The slowest rate the model writes at, in output tokens a second: a
    /// reply is never asked for more than it can write in the time the
    /// invocation has left, so a full reply always fits.
    pub model_tokens_per_second: u32,
    /// Who may register.
    pub registration: Registration,
    /// Caps per client address: password checks a minute on `/login/`,
    /// accounts made an hour on `/register/`.
    pub source_limits: SourceLimits,
    /// The origins browser pages may call the `/v1` routes from
    /// (`CORS_ALLOW_ORIGINS`).
    pub cors: AllowedOrigins,
}

/// The caps of the per-source limits; 0 turns one off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SourceLimits {
    /// Password checks per client address and minute on `/login/`.
    pub login_checks_per_minute: u32,
    /// Accounts made per client address and hour on `/register/`.
    pub registrations_per_hour: u32,
}

/// Who may register (`REGISTRATION`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Registration {
    /// Anyone.
    #[default]
    Open,
    /// Nobody: the operator's existing users only.
    Closed,
    /// Whoever has an invite code from `chat-ops invite`.
    Invite,
}

pub const DEFAULT_CHAT_COST: u32 = 100;
pub const DEFAULT_INITIAL_TOKENS: u32 = 4000;
pub const DEFAULT_SESSION_TTL_SECONDS: u64 = 24 * 60 * 60;
pub const DEFAULT_METRICS_NAMESPACE: &str = "ChatApi";
/// One user's fair share of the stage's default 50 requests a second: one
/// chat a second sustained, far above what a person types, and a cap on
/// what one script can take from everyone else.
pub const DEFAULT_CHATS_PER_MINUTE: u32 = 60;
/// Password checks one client address may cause a minute: a few people
/// behind one NAT logging in at once, or one person retyping, stay far
/// below it; a guesser spraying one password over many names (which the
/// per-name slow-down cannot see) gets 30 names a minute, not the route's
/// whole rate.
pub const DEFAULT_LOGIN_CHECKS_PER_IP: u32 = 30;
/// Accounts one client address may make an hour: a household or a class
/// signing up together fits; a script farming the initial grant does not.
pub const DEFAULT_REGISTRATIONS_PER_IP: u32 = 10;
/// The chat function's timeout with a model (29 s) plus a minute.
pub const DEFAULT_HOLD_SECONDS: u64 = 90;
/// Model calls one user may have running at once: a person in a few tabs
/// and a program with a little parallelism fit; a script opening a hundred
/// streams does not take the account's Lambda concurrency and the model's
/// quota from everyone else.
pub const DEFAULT_OPEN_CALLS_PER_USER: u32 = 4;
/// A conservative rate for Bedrock's on-demand text models, which mostly
/// stream at 50 to 150 output tokens a second: at this rate the chat
/// function's 24 s for the model fit 1200 tokens, above the default cap.
pub const DEFAULT_MODEL_TOKENS_PER_SECOND: u32 = 50;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("environment variable {0} must be set (the DynamoDB table name)")]
    Missing(&'static str),
    #[error("environment variable {name} must be {expected}, got {value:?}")]
    Invalid {
        name: &'static str,
        expected: &'static str,
        value: String,
    },
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Same as [`Config::from_env`] over any key lookup, so tests need not
    /// mutate the process environment.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let table = |name: &'static str| match get(name) {
            Some(v) if !v.trim().is_empty() => Ok(v),
            _ => Err(ConfigError::Missing(name)),
        };
        let number = |name: &'static str, default: u64, min: u64, max: u64| {
            number_in(&get, name, default, min, max)
        };
        // Costs and grants stay well inside i64 so balance arithmetic in
        // DynamoDB can never overflow.
        let max_tokens = 1_000_000_000;
        let chat_cost = number("CHAT_COST", DEFAULT_CHAT_COST.into(), 1, max_tokens)? as u32;
        // A price of 0 would make every call free, even at a balance of 0:
        // only an operator who says so (`MODEL_FREE=true`) gets that.
        let free = match get("MODEL_FREE").as_deref().map(str::trim) {
            None | Some("") | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "MODEL_FREE",
                    expected: "true or false",
                    value: other.to_owned(),
                })
            }
        };
        let price = |name: &'static str| -> Result<u32, ConfigError> {
            let lowest = if free { 0 } else { 1 };
            match get(name).filter(|v| !v.trim().is_empty()) {
                None => Err(ConfigError::Invalid {
                    name,
                    expected: "set with PRICING=usage (balance tokens per 1000 model tokens)",
                    value: String::new(),
                }),
                Some(value) => number_in(&get, name, 0, lowest, 1_000_000)
                    .map(|price| price as u32)
                    .map_err(|_| ConfigError::Invalid {
                        name,
                        expected: if free {
                            "a whole number from 0 to 1000000"
                        } else {
                            "a whole number from 1 to 1000000 (0 only with MODEL_FREE=true)"
                        },
                        value,
                    }),
            }
        };
        let pricing = match get("PRICING").as_deref().map(str::trim) {
            None | Some("") | Some("flat") => Pricing::Flat(chat_cost),
            Some("usage") => Pricing::Usage(UsagePrices::plain(
                price("MODEL_INPUT_PRICE")?,
                price("MODEL_OUTPUT_PRICE")?,
            )),
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "PRICING",
                    expected: "flat or usage",
                    value: other.to_owned(),
                })
            }
        };
        Ok(Config {
            pricing,
            hold_ttl: Duration::from_secs(number("HOLD_SECONDS", DEFAULT_HOLD_SECONDS, 30, 3600)?),
            tables: Tables {
                users: table("USERS_TABLE")?,
                credentials: table("CREDENTIALS_TABLE")?,
                chats: table("CHATS_TABLE")?,
            },
            registration: match get("REGISTRATION").as_deref().map(str::trim) {
                None | Some("") | Some("open") => Registration::Open,
                Some("closed") => Registration::Closed,
                Some("invite") => Registration::Invite,
                Some(other) => {
                    return Err(ConfigError::Invalid {
                        name: "REGISTRATION",
                        expected: "open, closed or invite",
                        value: other.to_owned(),
                    })
                }
            },
            chats_per_minute: number(
                "CHATS_PER_MINUTE",
                DEFAULT_CHATS_PER_MINUTE.into(),
                0,
                1_000_000,
            )? as u32,
            open_calls_per_user: number(
                "OPEN_CALLS_PER_USER",
                DEFAULT_OPEN_CALLS_PER_USER.into(),
                0,
                1000,
            )? as u32,
            model_tokens_per_second: number(
                "MODEL_TOKENS_PER_SECOND",
                DEFAULT_MODEL_TOKENS_PER_SECOND.into(),
                1,
                100_000,
            )? as u32,
            cors: AllowedOrigins::parse(get("CORS_ALLOW_ORIGINS").as_deref()),
            source_limits: SourceLimits {
                login_checks_per_minute: number(
                    "LOGIN_CHECKS_PER_IP",
                    DEFAULT_LOGIN_CHECKS_PER_IP.into(),
                    0,
                    1_000_000,
                )? as u32,
                registrations_per_hour: number(
                    "REGISTRATIONS_PER_IP",
                    DEFAULT_REGISTRATIONS_PER_IP.into(),
                    0,
                    1_000_000,
                )? as u32,
            },
            initial_tokens: number(
                "INITIAL_TOKENS",
                DEFAULT_INITIAL_TOKENS.into(),
                0,
                max_tokens,
            )? as u32,
            session_ttl: Duration::from_secs(number(
                "SESSION_TTL_SECONDS",
                DEFAULT_SESSION_TTL_SECONDS,
                60,
                365 * 24 * 60 * 60,
            )?),
            metrics_namespace: match get("METRICS_NAMESPACE").filter(|v| !v.trim().is_empty()) {
                None => DEFAULT_METRICS_NAMESPACE.to_owned(),
                // CloudWatch's limits for a namespace.
                Some(v)
                    if v.len() <= 255 && v.chars().all(|c| c.is_ascii_graphic() || c == ' ') =>
                {
                    v
                }
                Some(v) => {
                    return Err(ConfigError::Invalid {
                        name: "METRICS_NAMESPACE",
                        expected: "at most 255 printable ASCII characters",
                        value: v,
                    })
                }
            },
        })
    }

    /// Defaults with the given tables: for tests and local tooling. The
    /// per-source limits are off: every sample event comes from one address,
    /// so they would be one limit on every test; the tests of those limits
    /// turn them on.
    pub fn with_tables(tables: Tables) -> Self {
        Config {
            tables,
            pricing: Pricing::Flat(DEFAULT_CHAT_COST),
            hold_ttl: Duration::from_secs(DEFAULT_HOLD_SECONDS),
            initial_tokens: DEFAULT_INITIAL_TOKENS,
            session_ttl: Duration::from_secs(DEFAULT_SESSION_TTL_SECONDS),
            metrics_namespace: DEFAULT_METRICS_NAMESPACE.to_owned(),
            chats_per_minute: DEFAULT_CHATS_PER_MINUTE,
            open_calls_per_user: DEFAULT_OPEN_CALLS_PER_USER,
            model_tokens_per_second: DEFAULT_MODEL_TOKENS_PER_SECOND,
            registration: Registration::Open,
            source_limits: SourceLimits::default(),
            cors: AllowedOrigins::Any,
        }
    }
}

/// `name` from `get` as a whole number from `min` to `max`, or `default`
/// when unset or blank: the one reader of numeric settings, for `Config`
/// and the model's settings alike.
pub fn number_in(
    get: impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, ConfigError> {
    let Some(raw) = get(name).filter(|v| !v.trim().is_empty()) else {
        return Ok(default);
    };
    raw.trim()
        .parse::<u64>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or(ConfigError::Invalid {
            name,
            expected: "a whole number in range",
            value: raw,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Settings written out in code, as [`Config::from_lookup`] takes them.
    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    const TABLES: [(&str, &str); 3] = [
        ("USERS_TABLE", "u"),
        ("CREDENTIALS_TABLE", "s"),
        ("CHATS_TABLE", "c"),
    ];

    #[test]
    fn defaults_apply_when_only_tables_are_set() {
        let config = Config::from_lookup(lookup(&TABLES)).unwrap();
        assert_eq!(config.pricing, Pricing::Flat(100));
        assert_eq!(config.initial_tokens, 4000);
        assert_eq!(config.session_ttl, Duration::from_secs(86_400));
        assert_eq!(config.tables.credentials, "s");
    }

    #[test]
    fn a_missing_table_name_is_named_in_the_error() {
        let err = Config::from_lookup(lookup(&TABLES[..2])).unwrap_err();
        assert_eq!(err, ConfigError::Missing("CHATS_TABLE"));
        assert!(err.to_string().contains("CHATS_TABLE"));
    }

    #[test]
    fn a_zero_or_garbled_chat_cost_is_rejected() {
        for bad in ["0", "-5", "ten", "1.5"] {
            let mut pairs = TABLES.to_vec();
            pairs.push(("CHAT_COST", bad));
            let err = Config::from_lookup(lookup(&pairs)).unwrap_err();
            assert!(
                matches!(
                    err,
                    ConfigError::Invalid {
                        name: "CHAT_COST",
                        ..
                    }
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn pricing_is_flat_by_default_and_usage_needs_both_prices() {
        let config = Config::from_lookup(lookup(&TABLES)).unwrap();
        assert_eq!(config.pricing, Pricing::Flat(100));
        let mut pairs = TABLES.to_vec();
        pairs.extend([("PRICING", "usage"), ("MODEL_INPUT_PRICE", "3")]);
        let err = Config::from_lookup(lookup(&pairs)).unwrap_err();
        assert!(err.to_string().contains("MODEL_OUTPUT_PRICE"), "{err}");
        pairs.push(("MODEL_OUTPUT_PRICE", "15"));
        assert_eq!(
            Config::from_lookup(lookup(&pairs)).unwrap().pricing,
            Pricing::Usage(UsagePrices::plain(3, 15))
        );
        let mut bad = TABLES.to_vec();
        bad.push(("PRICING", "per-word"));
        assert!(Config::from_lookup(lookup(&bad)).is_err());
    }

    #[test]
    fn a_price_of_zero_is_refused_unless_the_model_is_declared_free() {
        for (input, output) in [("0", "15"), ("3", "0"), ("0", "0")] {
            let mut pairs = TABLES.to_vec();
            pairs.extend([
                ("PRICING", "usage"),
                ("MODEL_INPUT_PRICE", input),
                ("MODEL_OUTPUT_PRICE", output),
            ]);
            let err = Config::from_lookup(lookup(&pairs)).unwrap_err();
            assert!(err.to_string().contains("MODEL_FREE=true"), "{err}");
            pairs.push(("MODEL_FREE", "true"));
            let config = Config::from_lookup(lookup(&pairs)).unwrap();
            assert!(matches!(config.pricing, Pricing::Usage(_)));
        }
        let mut pairs = TABLES.to_vec();
        pairs.push(("MODEL_FREE", "yes"));
        let err = Config::from_lookup(lookup(&pairs)).unwrap_err();
        assert!(err.to_string().contains("MODEL_FREE"), "{err}");
    }

    #[test]
    fn the_open_call_cap_defaults_to_four_and_zero_turns_it_off() {
        let config = Config::from_lookup(lookup(&TABLES)).unwrap();
        assert_eq!(config.open_calls_per_user, 4);
        let mut pairs = TABLES.to_vec();
        pairs.push(("OPEN_CALLS_PER_USER", "0"));
        assert_eq!(
            Config::from_lookup(lookup(&pairs))
                .unwrap()
                .open_calls_per_user,
            0
        );
    }

    #[test]
    fn tuned_values_are_read() {
        let mut pairs = TABLES.to_vec();
        pairs.extend([
            ("CHAT_COST", "7"),
            ("INITIAL_TOKENS", "0"),
            ("SESSION_TTL_SECONDS", "3600"),
        ]);
        let config = Config::from_lookup(lookup(&pairs)).unwrap();
        assert_eq!(
            (config.pricing, config.initial_tokens),
            (Pricing::Flat(7), 0)
        );
        assert_eq!(config.session_ttl, Duration::from_secs(3600));
    }
}
