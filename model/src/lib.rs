//! A real model behind `/chat/` and `/v1/chat/completions`: Amazon Bedrock's
//! Converse and ConverseStream APIs, turned on by
//! setting `MODEL_ID`. Without it the chat keeps the dummy reply, so nothing
//! needs AWS to run locally.

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_sdk_bedrockruntime::config::http::HttpResponse;
use aws_sdk_bedrockruntime::config::retry::RetryConfig;
use aws_sdk_bedrockruntime::config::timeout::TimeoutConfig;
use aws_sdk_bedrockruntime::error::SdkError;
use aws_sdk_bedrockruntime::types::TokenUsage;
use aws_sdk_bedrockruntime::Client;
use std::sync::Arc;

use chat_core::catalog::{Catalog, ModelKind};
use chat_core::config::{number_in, ConfigError};
use chat_core::embedder::{Embedder, LocalEmbedder, LOCAL_EMBEDDING_MODEL};
use chat_core::pricing::Pricing;
use chat_core::pricing::Usage;
use chat_core::responder::{Conversation, DummyResponder, Responder, Sampling, StreamFuture};
use chat_core::served::{EmbeddingModel, Models, ServedModel};
use chat_core::App;

mod embed;
mod stream;
use chat_core::ApiError;
pub use embed::TitanEmbedder;

/// The whole model call, retries included, must end before the function's
/// timeout (29 s in `template.yaml` when a model is set, under the HTTP
/// API's 30 s) with room left for the read before it and the charge after
/// it (5 s each at the SDK's operation timeout).
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 15;
pub const MAX_TIMEOUT_SECONDS: u64 = 15;

/// A chat costs the same whatever the model writes, so the reply is capped:
/// what one chat can cost us is then bounded too. 8192 is the most output
/// the common Bedrock text models allow per call.
pub const DEFAULT_MAX_TOKENS: u32 = chat_core::catalog::DEFAULT_REPLY_TOKENS;
pub const MAX_MAX_TOKENS: u32 = chat_core::catalog::MAX_REPLY_TOKENS;

/// One retry: a throttled or not-ready model often is free again a moment
/// later, and the operation timeout bounds the wait either way.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 2;

/// Bedrock's own limit on a model id or ARN.
const MAX_MODEL_ID_LENGTH: usize = 2048;

/// Which model, and how long and how much it may take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelConfig {
    pub model_id: String,
    /// For the whole call, retries included. Streamed, for everything up to
    /// the first piece of the reply, then for each wait between events: a
    /// long reply may take longer, a stalled one may not.
    pub timeout: Duration,
    /// The most tokens a reply may have.
    pub max_tokens: u32,
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    /// Another endpoint than Bedrock's in the function's region: a local
    /// stand-in in tests.
    pub endpoint_url: Option<String>,
    /// Ask the model to cache the system prompt (a cache point after it),
    /// for models that support prompt caching.
    pub cache: bool,
    /// The model reads images (the catalog's `images`).
    pub images: bool,
}

impl ModelConfig {
    /// The defaults, for the model `model_id`.
    pub fn new(model_id: impl Into<String>) -> Self {
        ModelConfig {
            model_id: model_id.into(),
            timeout: Duration::from_secs(DEFAULT_TIMEOUT_SECONDS),
            max_tokens: DEFAULT_MAX_TOKENS,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            endpoint_url: None,
            cache: false,
            images: false,
        }
    }

    /// The model the environment asks for, or `None` for the dummy reply
    /// (`MODEL_ID` unset or empty).
    pub fn from_env() -> Result<Option<Self>, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Same as [`ModelConfig::from_env`] over any key lookup.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, ConfigError> {
        let set = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let Some(model_id) = set("MODEL_ID") else {
            return Ok(None);
        };
        let model_id = model_id.trim().to_owned();
        if model_id.len() > MAX_MODEL_ID_LENGTH || !model_id.chars().all(|c| c.is_ascii_graphic()) {
            return Err(ConfigError::Invalid {
                name: "MODEL_ID",
                expected: "a Bedrock model id, such as anthropic.claude-3-haiku-20240307-v1:0",
                value: model_id,
            });
        }
        Self::with_settings(&get, model_id).map(Some)
    }

    /// The model `model_id` with the deployment's model settings (its
    /// timeout, reply cap and endpoint) from `get`.
    pub fn with_settings(
        get: impl Fn(&str) -> Option<String>,
        model_id: String,
    ) -> Result<Self, ConfigError> {
        let set = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        // Every model setting is at least 1.
        let number =
            |name: &'static str, default: u64, max: u64| number_in(&get, name, default, 1, max);
        Ok(ModelConfig {
            timeout: Duration::from_secs(number(
                "MODEL_TIMEOUT_SECONDS",
                DEFAULT_TIMEOUT_SECONDS,
                MAX_TIMEOUT_SECONDS,
            )?),
            max_tokens: number(
                "MODEL_MAX_TOKENS",
                DEFAULT_MAX_TOKENS.into(),
                MAX_MAX_TOKENS.into(),
            )? as u32,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            // The SDK's own name for a Bedrock-only endpoint. Read here
            // rather than left to the SDK because the SDK would otherwise
            // fall back to AWS_ENDPOINT_URL, which locally is DynamoDB Local.
            endpoint_url: set("AWS_ENDPOINT_URL_BEDROCK_RUNTIME"),
            cache: false,
            images: false,
            model_id,
        })
    }
}

/// The whole app of a function that calls models (chat, completions,
/// responses), built once per cold start and never changed afterwards:
/// [`App::start_checking_tokens`], with the catalog's models (or the one
/// model of `MODEL_ID`, or the dummy) from the environment. A catalog or
/// model setting that is wrong stops the cold start with its sentence.
pub async fn start() -> Result<App, ConfigError> {
    let mut app = App::start_checking_tokens().await?;
    install_from_env(&mut app).await?;
    Ok(app)
}

/// Puts the models the environment names behind `app`, for a function's
/// `main`: the catalog (`CATALOG_FILE` or `CATALOG`), each of its models
/// answered by Bedrock or, without `bedrock_model`, by the dummy; or, with
/// no catalog, the one model `MODEL_ID` names at `PRICING`, or the dummy,
/// which usage pricing refuses there (a deployment meant for a model that
/// forgot to name it). The error is logged here, where its sentence names
/// the variable to fix.
async fn install_from_env(app: &mut App) -> Result<(), ConfigError> {
    let get = |name: &str| std::env::var(name).ok();
    let installed = match Catalog::from_lookup(get) {
        Ok(Some(catalog)) => models_of(&catalog, get).await,
        Ok(None) => legacy_model(app).await,
        Err(why) => Err(ConfigError::Invalid {
            name: "CATALOG",
            expected: "a catalog of models (docs/catalog.md)",
            value: why,
        }),
    };
    match installed {
        Ok(models) => {
            app.models = models;
            Ok(())
        }
        Err(error) => {
            tracing::error!("invalid configuration: {error}");
            Err(error)
        }
    }
}

/// A function's models from `catalog`: one Bedrock client configuration
/// for all of them, each with its own model id, reply cap and caching.
pub async fn models_of(
    catalog: &Catalog,
    get: impl Fn(&str) -> Option<String> + Copy,
) -> Result<Models, ConfigError> {
    let mut shared = None;
    let mut served = Vec::new();
    let mut embedding = Vec::new();
    for model in &catalog.models {
        let config = match &model.bedrock_model {
            None => None,
            Some(bedrock) => {
                let mut config = ModelConfig::with_settings(get, bedrock.clone())?;
                if let Some(max) = model.max_tokens {
                    config.max_tokens = max;
                }
                config.cache = model.cache;
                config.images = model.images;
                if shared.is_none() {
                    shared = Some(
                        aws_config::defaults(BehaviorVersion::latest())
                            .http_client(chat_core::app::http_client())
                            .load()
                            .await,
                    );
                }
                Some(config)
            }
        };
        let base = || {
            shared
                .as_ref()
                .map(aws_sdk_bedrockruntime::config::Builder::from)
                .unwrap_or_default()
        };
        if model.kind == ModelKind::Embedding {
            let embedder: Arc<dyn Embedder> = match &config {
                None => Arc::new(LocalEmbedder),
                Some(config) => Arc::new(TitanEmbedder::new(base(), config)),
            };
            embedding.push(EmbeddingModel {
                id: model.id.clone(),
                embedder,
                pricing: model.pricing,
            });
            continue;
        }
        let responder: Arc<dyn Responder> = match &config {
            None => Arc::new(DummyResponder),
            Some(config) => Arc::new(BedrockResponder::new(base(), config)),
        };
        served.push(ServedModel {
            id: model.id.clone(),
            responder,
            pricing: model.pricing,
        });
    }
    tracing::info!(
        models = catalog.models.len(),
        version = %catalog.version,
        default = %catalog.default,
        "models from the catalog"
    );
    // The catalog was checked to hold its default, a chat model.
    let models = Models::new(served, &catalog.default).ok_or(ConfigError::Invalid {
        name: "CATALOG",
        expected: "a default that is one of its models",
        value: catalog.default.clone(),
    })?;
    Ok(models.with_embedding(embedding))
}

/// The embedding model a deployment without a catalog serves beside the
/// dummy chat model (`make run`'s default): the local embedder, named
/// [`LOCAL_EMBEDDING_MODEL`], at the chat's flat price per 1000 input
/// tokens (words); see [`chat_core::openai::legacy_embedding_pricing`].
pub fn local_embedding(pricing: Pricing) -> Option<EmbeddingModel> {
    Some(EmbeddingModel {
        id: LOCAL_EMBEDDING_MODEL.to_owned(),
        embedder: Arc::new(LocalEmbedder),
        pricing: chat_core::openai::legacy_embedding_pricing(pricing)?,
    })
}

/// The one model of a deployment without a catalog.
async fn legacy_model(app: &App) -> Result<Models, ConfigError> {
    match ModelConfig::from_env()? {
        Some(model) => {
            tracing::info!(model = %model.model_id, "replies come from Bedrock");
            let responder = BedrockResponder::from_environment(&model).await;
            Ok(Models::only(Arc::new(responder), app.config.pricing))
        }
        None if matches!(app.config.pricing, Pricing::Usage(_)) => Err(ConfigError::Invalid {
            name: "MODEL_ID",
            expected: "set when PRICING=usage (or a CATALOG)",
            value: String::new(),
        }),
        None => {
            let models = Models::only(Arc::new(DummyResponder), app.config.pricing);
            Ok(models.with_embedding(local_embedding(app.config.pricing).into_iter().collect()))
        }
    }
}

/// Replies with what a Bedrock model answers: on `/chat/` to the message
/// alone (no history, no system prompt), streamed to a whole conversation.
#[derive(Clone, Debug)]
pub struct BedrockResponder {
    client: Client,
    model_id: String,
    max_tokens: i32,
    /// The SDK bounds a call until the response head; a stream's events
    /// come after it, so the stream bounds its waits with this itself.
    timeout: Duration,
    /// A cache point after the system prompt.
    cache: bool,
    images: bool,
}

impl BedrockResponder {
    /// The client from the standard AWS environment (in Lambda, the region
    /// and the function role's credentials), over the same HTTPS client as
    /// DynamoDB.
    pub async fn from_environment(model: &ModelConfig) -> Self {
        let shared = aws_config::defaults(BehaviorVersion::latest())
            .http_client(chat_core::app::http_client())
            .load()
            .await;
        Self::new(
            aws_sdk_bedrockruntime::config::Builder::from(&shared),
            model,
        )
    }

    /// A responder whose client is `base` (region, credentials, HTTP client)
    /// with the model's endpoint, timeout and retries.
    pub fn new(mut base: aws_sdk_bedrockruntime::config::Builder, model: &ModelConfig) -> Self {
        // Always set, None included: `base` carries AWS_ENDPOINT_URL, which
        // locally names DynamoDB Local, never a model.
        base.set_endpoint_url(model.endpoint_url.clone());
        let config = base
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(2))
                    // No attempt timeout: a model that is slow to start
                    // writing would only be asked again, and pay again.
                    .operation_timeout(model.timeout)
                    .build(),
            )
            .retry_config(RetryConfig::standard().with_max_attempts(model.max_attempts))
            .build();
        BedrockResponder {
            client: Client::from_conf(config),
            model_id: model.model_id.clone(),
            // Validated at start-up to at most MAX_MAX_TOKENS.
            max_tokens: i32::try_from(model.max_tokens).unwrap_or(i32::MAX),
            timeout: model.timeout,
            cache: model.cache,
            images: model.images,
        }
    }
}

impl Responder for BedrockResponder {
    fn is_paid(&self) -> bool {
        true
    }

    fn max_output_tokens(&self) -> u32 {
        self.max_tokens.unsigned_abs()
    }

    fn model_name(&self) -> &str {
        &self.model_id
    }

    fn takes_images(&self) -> bool {
        self.images
    }

    fn stream<'a>(
        &'a self,
        conversation: &'a Conversation,
        sampling: &'a Sampling,
    ) -> StreamFuture<'a> {
        Box::pin(stream::converse_stream(self, conversation, sampling))
    }
}

/// Bedrock counts in `i32`; a negative count is nonsense and prices as 0.
/// Its `inputTokens` leave out what was read from or written to the prompt
/// cache, which it reports apart: each is read as it is, never derived.
fn usage_of(usage: &TokenUsage) -> Usage {
    let count = |n: i32| u64::try_from(n).unwrap_or(0);
    Usage {
        input_tokens: count(usage.input_tokens()),
        output_tokens: count(usage.output_tokens()),
        cache_read_tokens: usage.cache_read_input_tokens().map_or(0, count),
        cache_write_tokens: usage.cache_write_input_tokens().map_or(0, count),
    }
}

/// Error codes that say the model processed nothing: it was busy, or it
/// refused the request as invalid or forbidden. A call that ends so, before
/// any output, is free.
const REFUSAL_CODES: &[&str] = &[
    "ThrottlingException",
    "ServiceUnavailableException",
    "ServiceQuotaExceededException",
    "ModelNotReadyException",
    "ValidationException",
    "AccessDeniedException",
    "ResourceNotFoundException",
];

/// Error codes that mean "not now" rather than "not this": the client may
/// retry the same message later.
const UNAVAILABLE_CODES: &[&str] = &[
    "ThrottlingException",
    "ServiceUnavailableException",
    "ServiceQuotaExceededException",
    "ModelNotReadyException",
    "ModelTimeoutException",
];

/// Bedrock's name for an error, spelt as in [`UNAVAILABLE_CODES`].
trait ErrorCode: std::error::Error + Send + Sync + 'static {
    fn error_code(&self) -> Option<&str>;
}

/// The HTTP status a failure came with, if it came with one (an exception
/// event inside a stream has none).
trait RawStatus: std::fmt::Debug + Send + Sync + 'static {
    fn status(&self) -> Option<u16>;
}

impl RawStatus for HttpResponse {
    fn status(&self) -> Option<u16> {
        Some(self.status().as_u16())
    }
}

/// A model that is busy, slow or out of reach is 503; one that answered with
/// an error (a refusal, a bad model id, an internal failure, a reply we
/// cannot read) is 502. The same split for a call and for a stream's events.
fn model_failure<E: ErrorCode, R: RawStatus>(err: SdkError<E, R>) -> ApiError {
    let unavailable = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => true,
        SdkError::ServiceError(service) => {
            service
                .raw()
                .status()
                .is_some_and(|status| matches!(status, 429 | 503))
                || service
                    .err()
                    .error_code()
                    .is_some_and(|code| UNAVAILABLE_CODES.contains(&code))
        }
        _ => false,
    };
    if unavailable {
        ApiError::ModelUnavailable(Box::new(err))
    } else {
        ApiError::ModelError(Box::new(err))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use devtools::settings::lookup;

    #[test]
    fn no_model_id_keeps_the_dummy_reply() {
        assert_eq!(ModelConfig::from_lookup(lookup(&[])), Ok(None));
        assert_eq!(
            ModelConfig::from_lookup(lookup(&[("MODEL_ID", " ")])),
            Ok(None)
        );
    }

    #[test]
    fn a_model_id_alone_takes_the_defaults() {
        let config = ModelConfig::from_lookup(lookup(&[(
            "MODEL_ID",
            "anthropic.claude-3-haiku-20240307-v1:0",
        )]))
        .unwrap()
        .unwrap();
        assert_eq!(
            config,
            ModelConfig::new("anthropic.claude-3-haiku-20240307-v1:0")
        );
        assert_eq!(config.timeout, Duration::from_secs(15));
        assert_eq!(config.endpoint_url, None);
    }

    #[test]
    fn timeout_tokens_and_endpoint_are_read() {
        let config = ModelConfig::from_lookup(lookup(&[
            ("MODEL_ID", "m"),
            ("MODEL_TIMEOUT_SECONDS", "7"),
            ("MODEL_MAX_TOKENS", "300"),
            ("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", "http://127.0.0.1:9"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(config.timeout, Duration::from_secs(7));
        assert_eq!(config.max_tokens, 300);
        assert_eq!(config.endpoint_url.as_deref(), Some("http://127.0.0.1:9"));
    }

    #[test]
    fn out_of_range_settings_are_named_in_the_error() {
        for (name, value) in [
            ("MODEL_TIMEOUT_SECONDS", "0"),
            ("MODEL_TIMEOUT_SECONDS", "16"),
            ("MODEL_TIMEOUT_SECONDS", "ten"),
            ("MODEL_MAX_TOKENS", "0"),
            ("MODEL_MAX_TOKENS", "8193"),
            ("MODEL_ID", "two words"),
        ] {
            let pairs = [("MODEL_ID", "m"), (name, value)];
            let err = ModelConfig::from_lookup(lookup(&pairs)).unwrap_err();
            assert!(err.to_string().contains(name), "{err}");
        }
    }
}
