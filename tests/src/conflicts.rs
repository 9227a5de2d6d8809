//! Transaction conflicts, lost answers and late answers on demand.
//!
//! DynamoDB Local runs one transaction at a time, so it never cancels one
//! for a `TransactionConflict`, and the retry path would never run in a
//! test. This HTTP client answers the next N requests of one operation
//! itself, with the cancellation DynamoDB sends when two transactions
//! collide, and hands every other request to the real client. Nothing of
//! an answered request reaches DynamoDB Local, just as nothing of a
//! cancelled transaction is applied in AWS.
//!
//! Two more faults forward the request first ([`Conflicts::arm_lost`],
//! [`Conflicts::arm_held`]): it reaches DynamoDB Local and commits, and
//! then its answer is lost (the SDK sees DynamoDB's 500, as when a
//! transaction's outcome is in doubt, and sends it again) or held back
//! until the test lets it go (a reader that acts on what it read while
//! another writer moves on). One more never forwards it
//! ([`Conflicts::arm_throttled`]): DynamoDB's refusal of a request over a
//! table's capacity, which the SDK backs off from and sends again.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use aws_sdk_dynamodb::config::http::{HttpRequest, HttpResponse};
use aws_sdk_dynamodb::config::retry::{RetryPartition, TokenBucket};
use aws_sdk_dynamodb::config::{HttpClient, SharedHttpClient};
use aws_sdk_dynamodb::Client;
use aws_smithy_runtime_api::client::http::{
    HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use serde_json::{json, Value};

/// How many conflicts are still to come, and how many were sent.
#[derive(Clone, Debug)]
pub struct Conflicts {
    /// Requests of the operation let through before the conflicts begin.
    skip: Arc<AtomicUsize>,
    pending: Arc<AtomicUsize>,
    sent: Arc<AtomicUsize>,
    /// How long each conflict takes to arrive, as a round trip would.
    delay_ms: Arc<AtomicUsize>,
    /// What the armed requests meet.
    fault: Arc<AtomicUsize>,
    /// Permits for held answers; [`Conflicts::let_go`] adds them.
    held: Arc<tokio::sync::Semaphore>,
}

impl Default for Conflicts {
    fn default() -> Self {
        Conflicts {
            skip: Arc::default(),
            pending: Arc::default(),
            sent: Arc::default(),
            delay_ms: Arc::default(),
            fault: Arc::default(),
            held: Arc::new(tokio::sync::Semaphore::new(0)),
        }
    }
}

/// The answers [`Conflicts::arm_lost_to_the_store`] loses: one per attempt
/// of the SDK's retry configuration.
pub fn lost_attempts() -> usize {
    chat_core::app::sdk_retries().max_attempts() as usize
}

// The faults, as stored in `Conflicts::fault`.
const CONFLICT: usize = 0;
const LOST: usize = 1;
const HELD: usize = 2;
const THROTTLED: usize = 3;

impl Conflicts {
    /// The next `count` requests of the operation are refused.
    pub fn arm(&self, count: usize) {
        self.arm_after(0, count);
    }

    /// The next `skip` requests of the operation go through, and the
    /// `count` after them are refused: a chat's hold commits, its settle
    /// meets the conflicts.
    pub fn arm_after(&self, skip: usize, count: usize) {
        self.arm_fault(CONFLICT, skip, count);
    }

    /// After `skip` requests of the operation, the `count` after them reach
    /// DynamoDB Local and commit, and their answers are replaced by a 500
    /// `InternalServerError`: "committed, but the answer was lost". The
    /// SDK (or the store's retries) sends each again.
    pub fn arm_lost(&self, skip: usize, count: usize) {
        self.arm_fault(LOST, skip, count);
    }

    /// After `skip` requests of the operation, one request commits and
    /// every attempt the SDK makes of it loses its answer, so the store's
    /// own retry sends the transaction anew. The SDK's attempts alone
    /// would prove nothing: they carry one `ClientRequestToken`, and
    /// DynamoDB answers a repeat of a committed token as it answered the
    /// first, without applying it again. The store's new send has a token
    /// of its own, and only its conditions can tell its commit apart.
    pub fn arm_lost_to_the_store(&self, skip: usize) {
        self.arm_lost(skip, lost_attempts());
    }

    /// After `skip` requests of the operation, the `count` after them reach
    /// DynamoDB Local at once, and their answers wait until
    /// [`Conflicts::let_go`]. The client's attempt timeout still applies:
    /// give the client a long one (see [`with_patient_faults`]).
    pub fn arm_held(&self, skip: usize, count: usize) {
        self.arm_fault(HELD, skip, count);
    }

    /// The next `count` requests of the operation are refused as over the
    /// table's capacity (a 400 `ProvisionedThroughputExceededException`)
    /// without reaching DynamoDB Local: [`lost_attempts`] of them are
    /// every attempt the SDK makes of one request.
    pub fn arm_throttled(&self, count: usize) {
        self.arm_fault(THROTTLED, 0, count);
    }

    /// Lets every held answer, and every later one, through.
    pub fn let_go(&self) {
        self.held
            .add_permits(tokio::sync::Semaphore::MAX_PERMITS / 2);
    }

    fn arm_fault(&self, fault: usize, skip: usize, count: usize) {
        self.fault.store(fault, Ordering::SeqCst);
        self.skip.store(skip, Ordering::SeqCst);
        self.pending.store(count, Ordering::SeqCst);
    }

    /// Waits (without blocking the runtime) until `count` faults were
    /// dealt, or `limit` passed; whether they were.
    pub async fn wait_for(&self, count: usize, limit: std::time::Duration) -> bool {
        let started = std::time::Instant::now();
        while self.sent() < count && started.elapsed() < limit {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        self.sent() >= count
    }

    /// Each refusal from now on arrives after `delay`, so that a number of
    /// attempts takes a known least time.
    pub fn take(&self, delay: std::time::Duration) {
        self.delay_ms
            .store(delay.as_millis() as usize, Ordering::SeqCst);
    }

    /// Faults dealt so far: conflicts and throttles answered, answers lost,
    /// and answers held (counted once DynamoDB Local has given them, so a
    /// test that waits for one knows the request was decided).
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
        // A held answer is counted in `call`, once DynamoDB Local gave it.
        if taken && self.fault.load(Ordering::SeqCst) != HELD {
            self.sent.fetch_add(1, Ordering::SeqCst);
        }
        taken
    }
}

/// `client` with conflicts injected into `operation` (e.g.
/// `"TransactWriteItems"`), driven by the returned handle.
pub fn with_conflicts(client: &Client, operation: &'static str) -> (Client, Conflicts) {
    let (config, conflicts) = injecting(client, operation);
    (Client::from_conf(config.build()), conflicts)
}

/// Another app on `app`'s tables and configuration, whose `operation`
/// requests meet the faults the returned handle arms: the app under test
/// goes on with a store that answers.
pub fn twin_with_faults(
    app: &chat_core::App,
    operation: &'static str,
) -> (chat_core::App, Conflicts) {
    twin(app, with_conflicts(app.store.client(), operation))
}

/// [`twin_with_faults`] with the long attempt timeouts of
/// [`with_patient_faults`], for held answers.
pub fn patient_twin(app: &chat_core::App, operation: &'static str) -> (chat_core::App, Conflicts) {
    twin(app, with_patient_faults(app.store.client(), operation))
}

fn twin(
    app: &chat_core::App,
    (client, faults): (Client, Conflicts),
) -> (chat_core::App, Conflicts) {
    (
        devtools::dynamodb_local::quiet_app(app.config.clone(), client),
        faults,
    )
}

/// As [`with_conflicts`], with attempt timeouts long enough that an answer
/// held by [`Conflicts::arm_held`] is waited for, not sent again.
pub fn with_patient_faults(client: &Client, operation: &'static str) -> (Client, Conflicts) {
    let (config, conflicts) = injecting(client, operation);
    let patient = aws_sdk_dynamodb::config::timeout::TimeoutConfig::builder()
        .connect_timeout(std::time::Duration::from_secs(5))
        .operation_attempt_timeout(std::time::Duration::from_secs(120))
        .operation_timeout(std::time::Duration::from_secs(120))
        .build();
    (
        Client::from_conf(config.timeout_config(patient).build()),
        conflicts,
    )
}

fn injecting(
    client: &Client,
    operation: &'static str,
) -> (aws_sdk_dynamodb::config::Builder, Conflicts) {
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
    // A retry quota of its own, without limit: the SDK's shared one is
    // spent by every fault the test binary deals, and once short it would
    // cut a request's attempts below the count a test arms and expects.
    let quota = RetryPartition::custom("injected-faults")
        .token_bucket(TokenBucket::unlimited())
        .build();
    let config = client
        .config()
        .to_builder()
        .http_client(injecting)
        .retry_partition(quota);
    (config, conflicts)
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
        match self.conflicts.fault.load(Ordering::SeqCst) {
            LOST => {
                let sent = self.inner.call(request);
                return HttpConnectorFuture::new(async move {
                    // Applied or refused, DynamoDB Local has decided; the
                    // caller never hears which.
                    sent.await?;
                    Ok(lost_response())
                });
            }
            HELD => {
                let sent = self.inner.call(request);
                let conflicts = self.conflicts.clone();
                return HttpConnectorFuture::new(async move {
                    let answer = sent.await;
                    if answer.is_ok() {
                        conflicts.sent.fetch_add(1, Ordering::SeqCst);
                    }
                    let _permit = conflicts.held.acquire().await;
                    answer
                });
            }
            THROTTLED => return HttpConnectorFuture::ready(Ok(throttled_response())),
            _ => {}
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

/// DynamoDB's answer when it cannot say how a request ended: a server
/// error, which the SDK retries.
fn lost_response() -> HttpResponse {
    dynamodb_error(
        500,
        json!({
            "__type": "com.amazonaws.dynamodb.v20120810#InternalServerError",
            "message": "Internal server error",
        }),
    )
}

/// DynamoDB's answer to a request over the table's capacity: throttling,
/// which the SDK retries with backoff.
fn throttled_response() -> HttpResponse {
    dynamodb_error(
        400,
        json!({
            "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
            "message": "The level of configured provisioned throughput for the table was exceeded",
        }),
    )
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
    dynamodb_error(
        400,
        json!({
            "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
            "message": "Transaction cancelled, please refer cancellation reasons for specific reasons",
            "CancellationReasons": reasons,
        }),
    )
}

/// An error answer as DynamoDB's JSON protocol writes it.
fn dynamodb_error(status: u16, body: Value) -> HttpResponse {
    let mut response = HttpResponse::new(
        status.try_into().expect("a status code"),
        SdkBody::from(body.to_string()),
    );
    response
        .headers_mut()
        .insert("content-type", "application/x-amz-json-1.0");
    response
}
