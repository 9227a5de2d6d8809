//! A stand-in for EventBridge behind the real SDK client: it keeps every
//! request the alerts function's publisher sends (its operation and JSON
//! body) and accepts them, or refuses one entry of each when asked. What
//! the permissions test reads the function's calls from, and what the
//! alert tests count the published events with.

use std::sync::{Arc, Mutex};

use aws_sdk_eventbridge::config::http::{HttpRequest, HttpResponse};
use aws_sdk_eventbridge::config::{Credentials, HttpClient, Region};
use aws_smithy_runtime_api::client::http::{
    HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use serde_json::{json, Value};

/// What the stand-in was sent: (operation, body), in order.
#[derive(Clone, Debug, Default)]
pub struct Sent {
    calls: Arc<Mutex<Vec<(String, Value)>>>,
    refuse_one: Arc<Mutex<bool>>,
}

impl Sent {
    pub fn calls(&self) -> Vec<(String, Value)> {
        self.calls.lock().unwrap().clone()
    }

    /// Every entry of every `PutEvents` sent, in order.
    pub fn entries(&self) -> Vec<Value> {
        self.calls()
            .into_iter()
            .filter(|(operation, _)| operation == "PutEvents")
            .flat_map(|(_, body)| body["Entries"].as_array().cloned().unwrap_or_default())
            .collect()
    }

    /// From now on, each `PutEvents` has its first entry refused.
    pub fn refuse_one_entry(&self, refuse: bool) {
        *self.refuse_one.lock().unwrap() = refuse;
    }
}

/// An EventBridge client whose requests reach the stand-in.
pub fn eventbridge() -> (aws_sdk_eventbridge::Client, Sent) {
    let sent = Sent::default();
    let config = aws_sdk_eventbridge::Config::builder()
        .behavior_version(aws_sdk_eventbridge::config::BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("local", "local", None, None, "stand-in"))
        .http_client(StandIn { sent: sent.clone() })
        .build();
    (aws_sdk_eventbridge::Client::from_conf(config), sent)
}

#[derive(Debug)]
struct StandIn {
    sent: Sent,
}

impl HttpClient for StandIn {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(StandInConnector {
            sent: self.sent.clone(),
        })
    }
}

#[derive(Debug)]
struct StandInConnector {
    sent: Sent,
}

impl HttpConnector for StandInConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        // EventBridge's JSON protocol names the operation in this header.
        let operation = request
            .headers()
            .get("x-amz-target")
            .unwrap_or_default()
            .rsplit('.')
            .next()
            .unwrap_or_default()
            .to_owned();
        let body: Value = request
            .body()
            .bytes()
            .and_then(|bytes| serde_json::from_slice(bytes).ok())
            .unwrap_or(Value::Null);
        let entries = body["Entries"].as_array().map_or(0, Vec::len);
        self.sent.calls.lock().unwrap().push((operation, body));
        let refuse = *self.sent.refuse_one.lock().unwrap() && entries > 0;
        let answered: Vec<Value> = (0..entries)
            .map(|i| match i {
                0 if refuse => json!({"ErrorCode": "InternalFailure", "ErrorMessage": "stand-in"}),
                _ => json!({"EventId": format!("event-{i}")}),
            })
            .collect();
        let answer = json!({"FailedEntryCount": usize::from(refuse), "Entries": answered});
        let mut response = HttpResponse::new(
            200.try_into().expect("200 is a status code"),
            SdkBody::from(answer.to_string()),
        );
        response
            .headers_mut()
            .insert("content-type", "application/x-amz-json-1.1");
        HttpConnectorFuture::ready(Ok(response))
    }
}
