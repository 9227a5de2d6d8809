//! `make run`'s alerts: polls the users table's stream on DynamoDB Local
//! (`AWS_ENDPOINT_URL`, `USERS_TABLE`), runs the alerts function's own
//! decision on each record and prints one JSON line per alert on stdout,
//! shaped as the EventBridge event the function publishes in AWS
//! (`source`, `detail-type`, `detail`). What the stream held before it
//! started is skipped, so a restart does not repeat old alerts.

use std::time::Duration;

use chat_core::alerts::{alerts_of, SOURCE};
use chat_core::config::Config;
use devtools::dynamodb_local::client_for;
use devtools::streams::StreamReader;
use serde_json::json;

/// How often the stream is read: about as soon as Lambda's event source
/// mapping would deliver a record.
const POLL: Duration = Duration::from_secs(1);

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let config = Config::from_env()?;
    let endpoint = std::env::var("AWS_ENDPOINT_URL")
        .map_err(|_| "AWS_ENDPOINT_URL must point at DynamoDB Local")?;
    let client = client_for(&endpoint);
    let mut reader = StreamReader::open(&endpoint, &client, &config.tables.users).await?;
    reader.read_new().await?;
    loop {
        tokio::time::sleep(POLL).await;
        let records = match reader.read_new().await {
            Ok(records) => records,
            // DynamoDB Local restarting or busy: the next poll reads on.
            Err(e) => {
                eprintln!("[alerts] reading the stream failed: {e}");
                continue;
            }
        };
        for record in &records {
            match alerts_of(record) {
                Ok(alerts) => {
                    for alert in alerts {
                        let event = json!({
                            "source": SOURCE,
                            "detail-type": alert.crossing.detail_type(),
                            "detail": alert.detail(),
                        });
                        println!("{event}");
                    }
                }
                Err(e) => eprintln!("[alerts] {e}"),
            }
        }
    }
}
