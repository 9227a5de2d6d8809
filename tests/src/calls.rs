//! What the functions ask of DynamoDB: an SDK interceptor that records
//! every request put on the wire (retries included), for the round-trip
//! budget in DESIGN.md and for the IAM grants in `template.yaml`.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::Client;
use chat_core::app::App;
use chat_core::config::Config;
use devtools::dynamodb_local::{client, fresh_tables, quiet_app};
use serde_json::Value;

/// What was sent since the last take, in order.
#[derive(Clone, Debug, Default)]
pub struct CallLog(Arc<Mutex<Vec<Sent>>>);

/// One request put on the wire.
#[derive(Clone, Debug)]
struct Sent {
    operation: String,
    body: Value,
}

impl CallLog {
    /// The operations sent, e.g. `["GetItem", "PutItem"]`.
    pub fn take(&self) -> Vec<String> {
        self.drain()
            .into_iter()
            .map(|sent| sent.operation)
            .collect()
    }

    /// What each request asked of which table, as IAM authorises it:
    /// (action, table name). A transaction counts once per item, under the
    /// single-item action of that item (`dynamodb:ConditionCheckItem`, ...).
    pub fn take_accesses(&self) -> BTreeSet<(String, String)> {
        self.drain().iter().flat_map(accesses).collect()
    }

    fn drain(&self) -> Vec<Sent> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

fn accesses(sent: &Sent) -> Vec<(String, String)> {
    // A query of an index is authorised on the index's ARN,
    // `<table ARN>/index/<name>`.
    let table = |request: &Value| {
        let name = request["TableName"].as_str().unwrap_or_default();
        match request["IndexName"].as_str() {
            Some(index) => format!("{name}/index/{index}"),
            None => name.to_owned(),
        }
    };
    match sent.operation.as_str() {
        "TransactWriteItems" | "TransactGetItems" => sent.body["TransactItems"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|item| item.as_object()?.iter().next())
            .map(|(kind, request)| {
                let action = match kind.as_str() {
                    "ConditionCheck" => "ConditionCheckItem",
                    "Put" => "PutItem",
                    "Update" => "UpdateItem",
                    "Delete" => "DeleteItem",
                    "Get" => "GetItem",
                    other => panic!("a transaction item of unknown kind {other}"),
                };
                (format!("dynamodb:{action}"), table(request))
            })
            .collect(),
        // A batch is authorised once per table it names.
        "BatchGetItem" | "BatchWriteItem" => sent.body["RequestItems"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(name, _)| (format!("dynamodb:{}", sent.operation), name.clone()))
            .collect(),
        operation => vec![(format!("dynamodb:{operation}"), table(&sent.body))],
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
        let operation = target.rsplit('.').next().unwrap_or(target).to_owned();
        let body = context
            .request()
            .body()
            .bytes()
            .and_then(|bytes| serde_json::from_slice(bytes).ok())
            .unwrap_or(Value::Null);
        self.0.lock().unwrap().push(Sent { operation, body });
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
