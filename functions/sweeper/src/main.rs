//! The `sweeper` Lambda, run on a schedule: configuration and the DynamoDB
//! client once per cold start, then one sweep per scheduled event.

use chat_core::clock::Timestamp;
use chat_core::deadline::Deadline;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let app = chat_core::App::start().await?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        let app = &app;
        async move {
            let deadline = Deadline::from_epoch_millis(event.context.deadline);
            let swept = sweeper::sweep(app, Timestamp::now(), deadline).await?;
            // A run with a failed release ends as a Lambda error, which the
            // stack's alarm on the sweeper's errors reports.
            if swept.failed > 0 {
                return Err(format!("{} holds could not be given back", swept.failed).into());
            }
            Ok::<Value, lambda_runtime::Error>(swept.json())
        }
    }))
    .await
}
