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
use chat_core::store::USERNAME;
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

    /// What each request asked of which table, as IAM authorises it. A
    /// transaction counts once per item, under the single-item action of
    /// that item (`dynamodb:ConditionCheckItem`, ...); a batch once per key.
    pub fn take_accesses(&self) -> BTreeSet<Access> {
        self.drain().iter().flat_map(accesses).collect()
    }

    fn drain(&self) -> Vec<Sent> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

/// One access as IAM sees it: the action, the table (or index), the item's
/// partition key (`dynamodb:LeadingKeys`; none for a query or a scan), the
/// top-level attributes the request names (`dynamodb:Attributes`), and
/// what it asks to be given back of the item.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Access {
    pub action: String,
    pub table: String,
    pub leading_key: Option<String>,
    pub attributes: BTreeSet<String>,
    /// `ReturnValues`, if the request sets it.
    pub return_values: Option<String>,
    /// `ReturnValuesOnConditionCheckFailure`, if the request sets it.
    pub return_on_failure: Option<String>,
}

fn accesses(sent: &Sent) -> Vec<Access> {
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
                access(action, table(request), request)
            })
            .collect(),
        // A batch is authorised per table, and its leading keys are every
        // key it asks for.
        "BatchGetItem" => sent.body["RequestItems"]
            .as_object()
            .into_iter()
            .flatten()
            .flat_map(|(name, request)| {
                request["Keys"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|key| {
                        let mut one = request.clone();
                        one["Key"] = key.clone();
                        access("BatchGetItem", name.clone(), &one)
                    })
                    .collect::<Vec<_>>()
            })
            .collect(),
        operation => vec![access(operation, table(&sent.body), &sent.body)],
    }
}

fn access(action: &str, table: String, request: &Value) -> Access {
    let key = if request["Key"].is_object() {
        &request["Key"]
    } else {
        &request["Item"]
    };
    let text = |name: &str| request[name].as_str().map(str::to_owned);
    Access {
        action: format!("dynamodb:{action}"),
        table,
        leading_key: key
            .as_object()
            .and_then(|key| key.get(USERNAME))
            .and_then(|value| value["S"].as_str())
            .map(str::to_owned),
        attributes: attributes_named(request),
        return_values: text("ReturnValues"),
        return_on_failure: text("ReturnValuesOnConditionCheckFailure"),
    }
}

/// Words of an expression that are syntax, not attribute names.
const EXPRESSION_WORDS: &[&str] = &[
    "SET",
    "ADD",
    "REMOVE",
    "DELETE",
    "AND",
    "OR",
    "NOT",
    "BETWEEN",
    "IN",
    "attribute_exists",
    "attribute_not_exists",
    "attribute_type",
    "begins_with",
    "contains",
    "size",
    "if_not_exists",
    "list_append",
];

/// The top-level attribute names a request names: those of its key or
/// item, and the first element of every path in its expressions (`#name`
/// placeholders resolved), as IAM's `dynamodb:Attributes` reads them.
fn attributes_named(request: &Value) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for field in ["Key", "Item"] {
        if let Some(map) = request[field].as_object() {
            names.extend(map.keys().cloned());
        }
    }
    let placeholders = request["ExpressionAttributeNames"].as_object();
    for field in [
        "UpdateExpression",
        "ConditionExpression",
        "ProjectionExpression",
        "KeyConditionExpression",
        "FilterExpression",
    ] {
        let Some(expression) = request[field].as_str() else {
            continue;
        };
        // Each word with the character before it: a word after `.` is
        // inside a path, one that starts with `:` a value.
        let mut words: Vec<(char, String)> = Vec::new();
        let (mut current, mut before, mut last) = (String::new(), ' ', ' ');
        for c in expression.chars().chain([' ']) {
            if c.is_alphanumeric() || c == '_' || c == '#' || c == ':' {
                if current.is_empty() {
                    before = last;
                }
                current.push(c);
            } else if !current.is_empty() {
                words.push((before, std::mem::take(&mut current)));
            }
            last = c;
        }
        for (before, name) in words {
            if before == '.'
                || name.starts_with(':')
                || name.starts_with(|c: char| c.is_ascii_digit())
            {
                continue;
            }
            let name = match name.strip_prefix('#') {
                Some(_) => placeholders
                    .and_then(|map| map.get(&name))
                    .and_then(Value::as_str)
                    .unwrap_or_else(|| panic!("{name} is not in ExpressionAttributeNames"))
                    .to_owned(),
                None => name,
            };
            if !EXPRESSION_WORDS.contains(&name.as_str()) {
                names.insert(name);
            }
        }
    }
    names
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_attributes_of_a_request_are_its_keys_and_its_paths_first_names() {
        let request = json!({
            "Key": {"username": {"S": "alice"}},
            "UpdateExpression": "SET tokens = tokens - :cost, api_keys.#sid[1] = :day ADD version :one",
            "ConditionExpression": "#e > :now AND size(sessions) < :room AND attribute_not_exists(disabled)",
            "ExpressionAttributeNames": {"#sid": "abc", "#e": "expires"},
        });
        let names: Vec<String> = attributes_named(&request).into_iter().collect();
        assert_eq!(
            names,
            ["api_keys", "disabled", "expires", "sessions", "tokens", "username", "version"]
        );
    }
}
