//! Counting what the functions ask of DynamoDB: an SDK interceptor that
//! records the operation of every request put on the wire (retries
//! included), for the round-trip budget in DESIGN.md.

use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::Client;
use chat_core::app::App;
use chat_core::config::Config;
use chat_core::local::{client, fresh_tables, quiet_app};

/// The operations sent since the last [`CallLog::take`], in order.
#[derive(Clone, Debug, Default)]
pub struct CallLog(Arc<Mutex<Vec<String>>>);

impl CallLog {
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

impl Intercept for CallLog {
    fn name(&self) -> &'static str {
        "CallLog"
    }

    // Once per attempt, just before it is sent: a retried call counts twice,
    // as it costs two round trips.
    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // DynamoDB's JSON protocol names the operation in this header,
        // e.g. "DynamoDB_20120810.TransactWriteItems".
        let target = context
            .request()
            .headers()
            .get("x-amz-target")
            .unwrap_or("unnamed");
        let operation = target.rsplit('.').next().unwrap_or(target);
        self.0.lock().unwrap().push(operation.to_owned());
        Ok(())
    }
}

/// An [`App`] on fresh tables whose client logs every call it sends.
pub async fn counted_app() -> (App, CallLog) {
    let plain = client();
    let tables = fresh_tables(&plain).await;
    let log = CallLog::default();
    let counted = Client::from_conf(plain.config().to_builder().interceptor(log.clone()).build());
    (quiet_app(Config::with_tables(tables), counted), log)
}
