//! The alerts function: reads each record of the users table's stream
//! (old and new image of every write of an account), decides what crossed
//! with [`chat_core::alerts`], and publishes one EventBridge event per
//! crossing on the stack's alert bus.
//!
//! Exactly once per crossing: every atomic write of an account is one
//! stream record, so however many chats race, one record crosses a given
//! threshold. Streams deliver at least once and a failed batch is sent
//! again whole, so a record can be published twice; its events then carry
//! the same `id` (user, what crossed, the record's sequence number), which
//! is what a consumer deduplicates on (docs/operations.md "Alerts").

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use chat_core::alerts::{alerts_of, Alert, BadRecord, StreamRecord, SOURCE};
use serde::Deserialize;
use serde_json::{json, Value};

/// The variable naming the bus the events go to.
pub const BUS_VARIABLE: &str = "ALERT_BUS";

/// The most entries one `PutEvents` takes.
pub const PUT_EVENTS_MAX: usize = 10;

/// Why a batch failed; the whole batch is then retried.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("the event is not a batch of stream records: {0}")]
    NotAStreamEvent(String),
    #[error(transparent)]
    BadRecord(#[from] BadRecord),
    #[error("publishing failed: {0}")]
    Publish(String),
}

/// Where alerts go: EventBridge in AWS, a line per event locally and in
/// tests.
pub trait Publisher {
    fn publish(
        &self,
        alerts: &[Alert],
    ) -> impl std::future::Future<Output = Result<(), AlertError>>;
}

/// The batch's shape, as Lambda hands it over: only what is read.
#[derive(Deserialize)]
struct Batch {
    #[serde(rename = "Records")]
    records: Vec<Record>,
}

#[derive(Deserialize)]
struct Record {
    dynamodb: StreamRecord,
}

/// The alerts of a batch of stream records, in the records' order.
pub fn alerts_of_batch(event: Value) -> Result<Vec<Alert>, AlertError> {
    let batch: Batch =
        serde_json::from_value(event).map_err(|e| AlertError::NotAStreamEvent(e.to_string()))?;
    let mut alerts = Vec::new();
    for record in &batch.records {
        alerts.extend(alerts_of(&record.dynamodb)?);
    }
    Ok(alerts)
}

/// Handles one batch: every alert in it published, or an error (and the
/// batch comes again).
pub async fn handle(publisher: &impl Publisher, event: Value) -> Result<Value, AlertError> {
    let alerts = alerts_of_batch(event)?;
    publisher.publish(&alerts).await?;
    for alert in &alerts {
        tracing::info!(id = %alert.id(), user = %alert.user, kind = alert.crossing.detail_type(), "alert published");
    }
    Ok(json!({"published": alerts.len()}))
}

/// The EventBridge entry of an alert: its detail carries the id.
pub fn entry(alert: &Alert, bus: &str) -> PutEventsRequestEntry {
    PutEventsRequestEntry::builder()
        .event_bus_name(bus)
        .source(SOURCE)
        .detail_type(alert.crossing.detail_type())
        .detail(alert.detail().to_string())
        .build()
}

/// Publishes on the stack's bus.
pub struct EventBridge {
    client: aws_sdk_eventbridge::Client,
    bus: String,
}

impl EventBridge {
    /// Publishes with `client` on `bus`.
    pub fn new(client: aws_sdk_eventbridge::Client, bus: impl Into<String>) -> Self {
        EventBridge {
            client,
            bus: bus.into(),
        }
    }

    /// The client from the standard environment, on the HTTPS client and
    /// timeouts the functions share, and the bus from [`BUS_VARIABLE`].
    pub async fn from_env() -> Result<Self, AlertError> {
        let bus = std::env::var(BUS_VARIABLE)
            .ok()
            .filter(|b| !b.is_empty())
            .ok_or_else(|| AlertError::Publish(format!("{BUS_VARIABLE} is not set")))?;
        let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(chat_core::app::http_client())
            .timeout_config(chat_core::app::sdk_timeouts())
            .retry_config(chat_core::app::sdk_retries())
            .load()
            .await;
        Ok(EventBridge {
            client: aws_sdk_eventbridge::Client::new(&shared),
            bus,
        })
    }
}

impl Publisher for EventBridge {
    async fn publish(&self, alerts: &[Alert]) -> Result<(), AlertError> {
        for chunk in alerts.chunks(PUT_EVENTS_MAX) {
            let output = self
                .client
                .put_events()
                .set_entries(Some(chunk.iter().map(|a| entry(a, &self.bus)).collect()))
                .send()
                .await
                .map_err(|e| AlertError::Publish(e.to_string()))?;
            // Some entries refused: the batch is retried whole, and the
            // entries that did go are sent again with the same ids.
            if output.failed_entry_count > 0 {
                return Err(AlertError::Publish(format!(
                    "{} of {} events refused",
                    output.failed_entry_count,
                    chunk.len()
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Keeps what it is given, or refuses the first `fail` batches.
    #[derive(Default)]
    struct Kept {
        events: Mutex<Vec<Value>>,
        fail: Mutex<usize>,
    }

    impl Publisher for Kept {
        async fn publish(&self, alerts: &[Alert]) -> Result<(), AlertError> {
            let mut fail = self.fail.lock().unwrap();
            if *fail > 0 {
                *fail -= 1;
                return Err(AlertError::Publish("refused".into()));
            }
            let mut events = self.events.lock().unwrap();
            events.extend(alerts.iter().map(Alert::detail));
            Ok(())
        }
    }

    fn sample() -> Value {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../events/alerts-stream.json"
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn a_batch_publishes_one_event_per_crossing_and_skips_other_items() {
        let kept = Kept::default();
        let answer = handle(&kept, sample()).await.unwrap();
        assert_eq!(answer, json!({"published": 3}));
        let events = kept.events.lock().unwrap();
        let kinds: Vec<(String, Value)> = events
            .iter()
            .map(|e| (e["kind"].as_str().unwrap().to_owned(), e["percent"].clone()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("balance_below".to_owned(), Value::Null),
                ("key_budget".to_owned(), json!(80)),
                ("key_budget".to_owned(), json!(100)),
            ]
        );
        assert_eq!(events[0]["balance"], 450);
        assert_eq!(events[0]["sequence"], "111100000000000000000001");
    }

    #[tokio::test]
    async fn a_retried_batch_republishes_the_same_ids() {
        let kept = Kept::default();
        *kept.fail.lock().unwrap() = 1;
        assert!(handle(&kept, sample()).await.is_err());
        handle(&kept, sample()).await.unwrap();
        handle(&kept, sample()).await.unwrap();
        let events = kept.events.lock().unwrap();
        let ids: Vec<&Value> = events.iter().map(|e| &e["id"]).collect();
        // Delivered twice: six events, three identities, in the same order.
        assert_eq!(ids.len(), 6);
        assert_eq!(ids[..3], ids[3..]);
        let unique: std::collections::BTreeSet<String> =
            ids.iter().map(|i| i.to_string()).collect();
        assert_eq!(unique.len(), 3);
    }

    #[test]
    fn an_entry_goes_to_the_bus_with_its_detail() {
        let alerts = alerts_of_batch(sample()).unwrap();
        let entry = entry(&alerts[0], "chat-alerts");
        assert_eq!(entry.event_bus_name(), Some("chat-alerts"));
        assert_eq!(entry.source(), Some(SOURCE));
        assert_eq!(entry.detail_type(), Some("Balance below threshold"));
        let detail: Value = serde_json::from_str(entry.detail().unwrap()).unwrap();
        assert_eq!(detail["id"], json!(alerts[0].id()));
    }

    #[tokio::test]
    async fn what_is_not_a_stream_batch_fails_the_invocation() {
        let kept = Kept::default();
        assert!(matches!(
            handle(&kept, json!({"detail-type": "Scheduled Event"})).await,
            Err(AlertError::NotAStreamEvent(_))
        ));
        let mut bad = sample();
        bad["Records"][0]["dynamodb"]["NewImage"]["tokens"] = json!({"S": "x"});
        assert!(matches!(
            handle(&kept, bad).await,
            Err(AlertError::BadRecord(_))
        ));
        assert!(kept.events.lock().unwrap().is_empty());
    }
}
