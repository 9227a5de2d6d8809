//! Business metrics as CloudWatch embedded metric format (EMF): one JSON
//! line per request on stdout, which Lambda ships to CloudWatch Logs and
//! CloudWatch turns into metrics. No API call, no extra permission, and no
//! latency on the request path beyond formatting a line.
//!
//! Every function reports `Latency`; the metered routes (chat,
//! completions, responses) also report `Chats`, `TokensSpent` and
//! `InsufficientTokens`, so the dashboard reads revenue and refusals
//! straight from the metrics, by function.

use crate::credits::Credits;
use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::ApiError;
use lambda_http::{Body, Response};
use serde_json::{json, Map, Value};

/// Where metric lines go: stdout in a Lambda, a buffer in tests.
pub trait MetricsSink: Send + Sync {
    fn write_line(&self, line: &str);
}

/// Lambda's stdout. One write per line under stdout's lock, so a metric
/// line never interleaves with a log line into something that is not JSON.
/// A failed write is dropped: losing a data point beats losing the request
/// (and `println!` would panic, which aborts the process).
#[derive(Clone, Copy, Debug, Default)]
pub struct Stdout;

impl MetricsSink for Stdout {
    fn write_line(&self, line: &str) {
        let _ = writeln!(std::io::stdout().lock(), "{line}");
    }
}

/// What one request came to.
#[derive(Clone, Debug, PartialEq)]
pub struct RequestMetrics {
    pub function: &'static str,
    pub latency: Duration,
    /// Chat only: (chats charged, tokens spent, refusals for lack of tokens).
    pub chat: Option<ChatCounts>,
    /// A limit against abuse refused it (a login slowed down, a chat over
    /// the per-user rate): counted as `Throttled`, by function.
    pub throttled: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChatCounts {
    pub chats: u32,
    pub tokens_spent: Credits,
    pub insufficient_tokens: u32,
}

/// What a handler says happened, for its answer and its metrics: the
/// metrics read this value, never the response.
pub trait Outcome {
    /// A chat's outcome: its metrics count chats, tokens and refusals.
    const CHAT: bool = false;

    /// The tokens this request charged; `None` when it charged nothing.
    fn charged(&self) -> Option<Credits> {
        None
    }

    fn into_response(self) -> Response<Body>;
}

/// Any answer but a chat's: nothing to count beyond latency.
impl Outcome for Response<Body> {
    fn into_response(self) -> Response<Body> {
        self
    }
}

/// What a chat request came to: its answer, and the tokens it charged
/// (`None` for a replay, which charges nothing).
pub struct ChatAnswer {
    pub response: Response<Body>,
    pub charged: Option<Credits>,
}

impl Outcome for ChatAnswer {
    const CHAT: bool = true;

    fn charged(&self) -> Option<Credits> {
        self.charged
    }

    fn into_response(self) -> Response<Body> {
        self.response
    }
}

impl ChatCounts {
    /// A chat answered: with what it charged, or nothing (a replay).
    pub fn answered(charged: Option<Credits>) -> Self {
        ChatCounts {
            chats: u32::from(charged.is_some()),
            tokens_spent: charged.unwrap_or_default(),
            insufficient_tokens: 0,
        }
    }

    /// A chat refused: one refusal if for lack of tokens, else nothing.
    pub fn refused(error: &ApiError) -> Self {
        ChatCounts {
            chats: 0,
            tokens_spent: Credits::ZERO,
            insufficient_tokens: u32::from(matches!(error, ApiError::InsufficientTokens { .. })),
        }
    }

    pub fn of<O: Outcome>(outcome: &Result<O, ApiError>) -> Self {
        match outcome {
            Ok(answer) => ChatCounts::answered(answer.charged()),
            Err(error) => ChatCounts::refused(error),
        }
    }
}

impl RequestMetrics {
    /// The EMF document: metric names and units under `_aws`, their values
    /// and the `Function` dimension as top-level members.
    pub fn emf(&self, namespace: &str, at: SystemTime) -> Value {
        let mut definitions = vec![json!({"Name": "Latency", "Unit": "Milliseconds"})];
        let mut document = Map::new();
        document.insert("Function".into(), json!(self.function));
        document.insert("Latency".into(), json!(self.latency.as_secs_f64() * 1000.0));
        if let Some(chat) = self.chat {
            for (name, value) in [
                ("Chats", u64::from(chat.chats)),
                ("TokensSpent", chat.tokens_spent.get()),
                ("InsufficientTokens", u64::from(chat.insufficient_tokens)),
            ] {
                definitions.push(json!({"Name": name, "Unit": "Count"}));
                document.insert(name.into(), json!(value));
            }
        }
        if self.throttled {
            definitions.push(json!({"Name": "Throttled", "Unit": "Count"}));
            document.insert("Throttled".into(), json!(1));
        }
        let timestamp = at
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        document.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp,
                "CloudWatchMetrics": [{
                    "Namespace": namespace,
                    "Dimensions": [["Function"]],
                    "Metrics": definitions,
                }],
            }),
        );
        Value::Object(document)
    }

    pub fn write_to(&self, sink: &dyn MetricsSink, namespace: &str) {
        sink.write_line(&self.emf(namespace, SystemTime::now()).to_string());
    }
}

/// A rare event on the money path, counted on a line of its own. Each is
/// model work not yet paid for at the time, and has an alarm in
/// `template.yaml`: none of them happens while all is well.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MoneyEvent {
    /// A settle could not commit within the invocation: what the chat owes
    /// was recorded on its hold, for the sweeper to charge.
    SettleFailed,
    /// A settle could not commit and the record of what is owed could not
    /// be written either: the sweeper will charge the whole hold.
    OwedUnrecorded,
    /// The sweeper closed a hold whose chat never settled.
    HoldSwept,
    /// Of those, one with nothing recorded: charged its whole amount.
    ChargedAtBound,
}

impl MoneyEvent {
    pub const ALL: [MoneyEvent; 4] = [
        MoneyEvent::SettleFailed,
        MoneyEvent::OwedUnrecorded,
        MoneyEvent::HoldSwept,
        MoneyEvent::ChargedAtBound,
    ];

    pub fn metric(self) -> &'static str {
        match self {
            MoneyEvent::SettleFailed => "SettleFailures",
            MoneyEvent::OwedUnrecorded => "OwedUnrecorded",
            MoneyEvent::HoldSwept => "HoldsSwept",
            MoneyEvent::ChargedAtBound => "HoldsChargedAtBound",
        }
    }

    /// The EMF document that counts `count` such events for `function`:
    /// by function, and in all (the empty dimension set), which is what
    /// the alarms watch.
    pub fn emf(self, function: &str, count: u64, namespace: &str, at: SystemTime) -> Value {
        let timestamp = at
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        json!({
            "Function": function,
            self.metric(): count,
            "_aws": {
                "Timestamp": timestamp,
                "CloudWatchMetrics": [{
                    "Namespace": namespace,
                    "Dimensions": [["Function"], []],
                    "Metrics": [{"Name": self.metric(), "Unit": "Count"}],
                }],
            },
        })
    }

    pub fn write_to(self, function: &str, count: u64, sink: &dyn MetricsSink, namespace: &str) {
        if count > 0 {
            let document = self.emf(function, count, namespace, SystemTime::now());
            sink.write_line(&document.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_money_event_is_counted_by_function_and_in_all() {
        let document = MoneyEvent::SettleFailed.emf("chat", 2, "Ns", UNIX_EPOCH);
        assert_eq!(document["SettleFailures"], 2);
        assert_eq!(document["Function"], "chat");
        let directive = &document["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Dimensions"], json!([["Function"], []]));
        assert_eq!(directive["Metrics"][0]["Name"], "SettleFailures");
    }

    fn charged(tokens: Option<u64>) -> Result<ChatAnswer, ApiError> {
        Ok(ChatAnswer {
            response: Response::new(Body::Empty),
            charged: tokens.map(Credits::new),
        })
    }

    #[test]
    fn only_a_charged_chat_counts_as_spending_and_with_what_it_charged() {
        let counts = |outcome| ChatCounts::of(&outcome);
        assert_eq!(
            counts(charged(Some(37))),
            ChatCounts {
                chats: 1,
                tokens_spent: Credits::new(37),
                insufficient_tokens: 0
            }
        );
        assert_eq!(
            counts(charged(None)),
            ChatCounts {
                chats: 0,
                tokens_spent: Credits::ZERO,
                insufficient_tokens: 0
            }
        );
        assert_eq!(
            counts(Err(ApiError::InsufficientTokens {
                balance: Credits::new(5),
                cost: Credits::new(100)
            })),
            ChatCounts {
                chats: 0,
                tokens_spent: Credits::ZERO,
                insufficient_tokens: 1
            }
        );
        assert_eq!(
            counts(Err(ApiError::Unauthorized)),
            ChatCounts {
                chats: 0,
                tokens_spent: Credits::ZERO,
                insufficient_tokens: 0
            }
        );
    }

    #[test]
    fn the_document_declares_every_value_it_carries() {
        let metrics = RequestMetrics {
            function: "chat",
            latency: Duration::from_micros(2500),
            chat: Some(ChatCounts {
                chats: 1,
                tokens_spent: Credits::new(100),
                insufficient_tokens: 0,
            }),
            throttled: false,
        };
        let at = UNIX_EPOCH + Duration::from_millis(1_795_615_387_000);
        let document = metrics.emf("ChatApi", at);
        assert_eq!(document["_aws"]["Timestamp"], 1_795_615_387_000u64);
        let directive = &document["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "ChatApi");
        assert_eq!(directive["Dimensions"], json!([["Function"]]));
        assert_eq!(document["Function"], "chat");
        let names: Vec<&str> = directive["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["Latency", "Chats", "TokensSpent", "InsufficientTokens"]
        );
        for name in names {
            assert!(document[name].is_number(), "{name} has a value");
        }
        assert_eq!(document["Latency"], 2.5);
        assert_eq!(document["TokensSpent"], 100);
    }

    #[test]
    fn other_functions_report_latency_alone() {
        let metrics = RequestMetrics {
            function: "balance",
            latency: Duration::from_millis(3),
            chat: None,
            throttled: false,
        };
        let document = metrics.emf("ChatApi", SystemTime::now());
        assert_eq!(
            document["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        assert!(document.get("Chats").is_none());
    }

    #[test]
    fn a_throttled_request_counts_as_throttled_and_others_carry_no_such_metric() {
        let mut metrics = RequestMetrics {
            function: "login",
            latency: Duration::from_millis(3),
            chat: None,
            throttled: true,
        };
        let document = metrics.emf("Ns", UNIX_EPOCH);
        assert_eq!(document["Throttled"], 1);
        let names = document["_aws"]["CloudWatchMetrics"][0]["Metrics"].to_string();
        assert!(names.contains("Throttled"), "{names}");
        metrics.throttled = false;
        assert!(metrics.emf("Ns", UNIX_EPOCH).get("Throttled").is_none());
    }
}
