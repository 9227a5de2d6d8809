//! What a function holds across invocations: built once per cold start.

use std::sync::Arc;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::Client;

use crate::config::{Config, ConfigError};
use crate::responder::{DummyResponder, Responder};
use crate::store::Store;

pub struct App {
    pub config: Config,
    pub store: Store,
    pub responder: Arc<dyn Responder>,
}

impl App {
    pub fn new(config: Config, client: Client) -> Self {
        let store = Store::new(client, config.tables.clone());
        App {
            config,
            store,
            responder: Arc::new(DummyResponder),
        }
    }

    /// Logging, configuration and the DynamoDB client, for a function's
    /// `main`. A configuration error stops the cold start with its message.
    pub async fn start() -> Result<Self, ConfigError> {
        lambda_runtime::tracing::init_default_subscriber();
        // Logged here because `main` returning the error would print only
        // its Debug form, without the sentence naming the variable to set.
        let config =
            Config::from_env().inspect_err(|e| tracing::error!("invalid configuration: {e}"))?;
        Ok(App::new(config, dynamodb_client().await))
    }
}

/// Each attempt must finish well inside the function's timeout (6 s for chat
/// and balance in `template.yaml`), retries included, so a slow DynamoDB ends
/// as a clean 503 instead of a Lambda timeout.
pub fn sdk_timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(1))
        .operation_attempt_timeout(Duration::from_secs(2))
        .operation_timeout(Duration::from_secs(5))
        .build()
}

/// The SDK's standard mode retries throttling and transient faults; three
/// attempts fit the operation timeout above.
pub fn sdk_retries() -> RetryConfig {
    RetryConfig::standard().with_max_attempts(3)
}

/// The client from the standard AWS environment: in Lambda the region and
/// credentials come from the environment variables the service sets, so
/// nothing is probed; `AWS_ENDPOINT_URL` points it at DynamoDB Local.
pub async fn dynamodb_client() -> Client {
    let shared = aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(sdk_timeouts())
        .retry_config(sdk_retries())
        .load()
        .await;
    Client::new(&shared)
}
