//! The `alerts` Lambda, on the users table's stream: the EventBridge
//! client once per cold start, then one batch of stream records per
//! invocation. A failed batch ends as a Lambda error, so the event source
//! mapping retries it (splitting it to find a bad record) and finally
//! hands it to the on-failure queue.

use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let publisher = alerts::EventBridge::from_env()
        .await
        .inspect_err(|e| tracing::error!("{e}"))?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        let publisher = &publisher;
        async move {
            alerts::handle(publisher, event.payload)
                .await
                .map_err(lambda_runtime::Error::from)
        }
    }))
    .await
}
