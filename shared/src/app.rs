//! What a function holds across invocations: built once per cold start.

use std::sync::Arc;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::config::SharedHttpClient;
use aws_sdk_dynamodb::Client;
use aws_smithy_http_client::tls;

use lambda_http::{Body, Response};

use crate::auth::Authenticator;
use crate::config::{Config, ConfigError};
use crate::error::ApiError;
use crate::metrics::{ChatCounts, MetricsSink, MoneyEvent, Outcome, RequestMetrics, Stdout};
use crate::responder::DummyResponder;
use crate::served::Models;
use crate::store::Store;

pub struct App {
    pub config: Config,
    pub store: Store,
    /// Checks tokens against the signing key, held across invocations.
    pub auth: Authenticator,
    /// The models served and their prices (the catalog), built once per
    /// cold start.
    pub models: Models,
    /// Where each request's embedded metrics go (stdout in Lambda).
    pub metrics: Arc<dyn MetricsSink>,
}

impl App {
    pub fn new(config: Config, client: Client) -> Self {
        let store = Store::new(client, config.tables.clone())
            .with_chats_per_minute(config.chats_per_minute)
            .with_open_calls_per_user(config.open_calls_per_user)
            .with_source_limits(config.source_limits);
        App {
            models: Models::only(Arc::new(DummyResponder), config.pricing),
            config,
            auth: Authenticator::new(store.clone()),
            store,
            metrics: Arc::new(Stdout),
        }
    }

    /// The answer to a request, its error (if any) mapped to HTTP, with its
    /// metrics written from what the handler says happened: what every
    /// handler's `handle` returns.
    pub fn answer<O: Outcome>(
        &self,
        function: &'static str,
        started: std::time::Instant,
        outcome: Result<O, ApiError>,
    ) -> Result<Response<Body>, lambda_http::Error> {
        self.answer_as(function, started, outcome, ApiError::into_response)
    }

    /// [`App::answer`] with errors written by `error_response`: the
    /// OpenAI-compatible routes write them in OpenAI's shape.
    pub fn answer_as<O: Outcome>(
        &self,
        function: &'static str,
        started: std::time::Instant,
        outcome: Result<O, ApiError>,
        error_response: impl FnOnce(ApiError) -> Response<Body>,
    ) -> Result<Response<Body>, lambda_http::Error> {
        let chat = O::CHAT.then(|| ChatCounts::of(&outcome));
        let throttled = outcome.as_ref().is_err_and(ApiError::is_throttling);
        let response = match outcome {
            Ok(answer) => answer.into_response(),
            Err(error) => error_response(error),
        };
        self.record(function, started, chat, throttled);
        Ok(response)
    }

    /// Writes one request's metrics: for a handler that answers without
    /// [`App::answer`], such as a stream whose outcome is known only at its
    /// end.
    pub fn record(
        &self,
        function: &'static str,
        started: std::time::Instant,
        chat: Option<ChatCounts>,
        throttled: bool,
    ) {
        let metrics = RequestMetrics {
            function,
            latency: started.elapsed(),
            chat,
            throttled,
        };
        metrics.write_to(self.metrics.as_ref(), &self.config.metrics_namespace);
    }

    /// Counts `count` money events of `function` (nothing for 0).
    pub fn count(&self, function: &str, event: MoneyEvent, count: u64) {
        event.write_to(
            function,
            count,
            self.metrics.as_ref(),
            &self.config.metrics_namespace,
        );
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

    /// [`App::start`] for a function that checks tokens: the signing key is
    /// read now, so the first request does not wait for it.
    pub async fn start_checking_tokens() -> Result<Self, ConfigError> {
        let app = App::start().await?;
        app.auth.warm_up().await;
        Ok(app)
    }
}

/// HTTPS through hyper 1 and rustls with ring. The SDK's default client is
/// the same stack on aws-lc-rs, whose extra code lands in every zip and is
/// loaded on every cold start; DynamoDB needs nothing ring lacks. The client
/// keeps its connections open, so a warm function reuses one connection.
pub fn http_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}

/// Each attempt must finish well inside the function's timeout (6 s for the
/// DynamoDB-only functions in `template.yaml`), retries included, so a slow DynamoDB ends
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
        .http_client(http_client())
        .timeout_config(sdk_timeouts())
        .retry_config(sdk_retries())
        .load()
        .await;
    Client::new(&shared)
}
