//! Transaction conflicts on demand.
//!
//! DynamoDB Local runs one transaction at a time, so it never cancels one
//! for a `TransactionConflict`, and the retry path would never run in a
//! test. This HTTP client answers the next N requests of one operation
//! itself, with the cancellation DynamoDB sends when two transactions
//! collide, and hands every other request to the real client. Nothing of
//! an answered request reaches DynamoDB Local, just as nothing of a
//! cancelled transaction is applied in AWS.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use aws_sdk_dynamodb::config::http::{HttpRequest, HttpResponse};
use aws_sdk_dynamodb::config::{HttpClient, SharedHttpClient};
use aws_sdk_dynamodb::Client;
use aws_smithy_runtime_api::client::http::{
    HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use serde_json::{json, Value};

/// How many conflicts are still to come, and how many were sent.
#[derive(Clone, Debug, Default)]
pub struct Conflicts {
    /// Requests of the operation let through before the conflicts begin.
    skip: Arc<AtomicUsize>,
    pending: Arc<AtomicUsize>,
    sent: Arc<AtomicUsize>,
    /// How long each conflict takes to arrive, as a round trip would.
    delay_ms: Arc<AtomicUsize>,
}

impl Conflicts {
    /// The next `count` requests of the operation are refused.
    pub fn arm(&self, count: usize) {
        self.arm_after(0, count);
    }

    /// The next `skip` requests of the operation go through, and the
    /// `count` after them are refused: a chat's hold commits, its settle
    /// meets the conflicts.
    pub fn arm_after(&self, skip: usize, count: usize) {
        self.skip.store(skip, Ordering::SeqCst);
        self.pending.store(count, Ordering::SeqCst);
    }

    /// Each refusal from now on arrives after `delay`, so that a number of
    /// attempts takes a known least time.
    pub fn take(&self, delay: std::time::Duration) {
        self.delay_ms
            .store(delay.as_millis() as usize, Ordering::SeqCst);
    }

    /// Conflicts answered so far.
    pub fn sent(&self) -> usize {
        self.sent.load(Ordering::SeqCst)
    }

    fn take_one(&self) -> bool {
        let skipped = self
            .skip
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if skipped {
            return false;
        }
        let taken = self
            .pending
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if taken {
            self.sent.fetch_add(1, Ordering::SeqCst);
        }
        taken
    }
}

/// `client` with conflicts injected into `operation` (e.g.
/// `"TransactWriteItems"`), driven by the returned handle.
pub fn with_conflicts(client: &Client, operation: &'static str) -> (Client, Conflicts) {
    let conflicts = Conflicts::default();
    let inner = client
        .config()
        .http_client()
        .unwrap_or_else(chat_core::app::http_client);
    let injecting = Injecting {
        inner,
        operation,
        conflicts: conflicts.clone(),
    };
    let config = client.config().to_builder().http_client(injecting).build();
    (Client::from_conf(config), conflicts)
}

#[derive(Debug)]
struct Injecting {
    inner: SharedHttpClient,
    operation: &'static str,
    conflicts: Conflicts,
}

impl HttpClient for Injecting {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(InjectingConnector {
            inner: self.inner.http_connector(settings, components),
            operation: self.operation,
            conflicts: self.conflicts.clone(),
        })
    }
}

#[derive(Debug)]
struct InjectingConnector {
    inner: SharedHttpConnector,
    operation: &'static str,
    conflicts: Conflicts,
}

impl HttpConnector for InjectingConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        // DynamoDB's JSON protocol names the operation in this header.
        let target = request.headers().get("x-amz-target").unwrap_or_default();
        if target.rsplit('.').next() != Some(self.operation) || !self.conflicts.take_one() {
            return self.inner.call(request);
        }
        let items = request
            .body()
            .bytes()
            .and_then(|bytes| serde_json::from_slice::<Value>(bytes).ok())
            .and_then(|body| body["TransactItems"].as_array().map(Vec::len))
            .unwrap_or(1);
        let delay = self.conflicts.delay_ms.load(Ordering::SeqCst) as u64;
        if delay == 0 {
            return HttpConnectorFuture::ready(Ok(conflict_response(items)));
        }
        HttpConnectorFuture::new(async move {
            tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
            Ok(conflict_response(items))
        })
    }
}

/// DynamoDB's answer to a transaction that met another on its first item:
/// one reason per item, in order, the others `None`.
fn conflict_response(items: usize) -> HttpResponse {
    let reasons: Vec<Value> = (0..items)
        .map(|i| match i {
            0 => json!({"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}),
            _ => json!({"Code": "None"}),
        })
        .collect();
    let body = json!({
        "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
        "message": "Transaction cancelled, please refer cancellation reasons for specific reasons",
        "CancellationReasons": reasons,
    });
    let mut response = HttpResponse::new(
        400.try_into().expect("400 is a status code"),
        SdkBody::from(body.to_string()),
    );
    response
        .headers_mut()
        .insert("content-type", "application/x-amz-json-1.0");
    response
}
