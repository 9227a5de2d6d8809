//! Embeddings from Bedrock: Amazon Titan Text Embeddings V2 through
//! `InvokeModel`, one call per input.
//!
//! Titan V2 because its reply counts the tokens it read
//! (`inputTextTokenCount`): each call is charged exactly what Bedrock bills
//! for it, never an estimate. Its body is `{"inputText", "dimensions",
//! "normalize"}`, its reply `{"embedding": [...], "inputTextTokenCount"}`.

use std::time::Duration;

use aws_sdk_bedrockruntime::config::retry::RetryConfig;
use aws_sdk_bedrockruntime::config::timeout::TimeoutConfig;
use aws_sdk_bedrockruntime::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_bedrockruntime::operation::invoke_model::InvokeModelError;
use aws_sdk_bedrockruntime::primitives::Blob;
use aws_sdk_bedrockruntime::Client;
use serde::Deserialize;

use chat_core::embedder::{EmbedFuture, Embedder, Embedding, TITAN_V2_DIMENSIONS};
use chat_core::responder::StartFailure;
use chat_core::ApiError;

use crate::{model_failure, ErrorCode, ModelConfig, REFUSAL_CODES};

impl ErrorCode for InvokeModelError {
    fn error_code(&self) -> Option<&str> {
        self.code()
    }
}

/// A Bedrock embedding model of Titan Text Embeddings V2's interface.
#[derive(Clone, Debug)]
pub struct TitanEmbedder {
    client: Client,
    model_id: String,
}

/// The request body Titan V2 reads. `normalize`: unit vectors, as OpenAI's
/// embeddings are, so a dot product is the cosine similarity.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct TitanRequest<'a> {
    input_text: &'a str,
    dimensions: u32,
    normalize: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TitanReply {
    embedding: Vec<f32>,
    input_text_token_count: i64,
}

impl TitanEmbedder {
    /// An embedder whose client is `base` with the model's endpoint,
    /// timeout and retries, as [`crate::BedrockResponder::new`] makes its.
    pub fn new(mut base: aws_sdk_bedrockruntime::config::Builder, model: &ModelConfig) -> Self {
        // Always set, None included: `base` carries AWS_ENDPOINT_URL, which
        // locally names DynamoDB Local, never a model.
        base.set_endpoint_url(model.endpoint_url.clone());
        let config = base
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(2))
                    .operation_timeout(model.timeout)
                    .build(),
            )
            .retry_config(RetryConfig::standard().with_max_attempts(model.max_attempts))
            .build();
        TitanEmbedder {
            client: Client::from_conf(config),
            model_id: model.model_id.clone(),
        }
    }

    async fn call(&self, text: &str, dimensions: u32) -> Result<Embedding, StartFailure> {
        let body = serde_json::to_vec(&TitanRequest {
            input_text: text,
            dimensions,
            normalize: true,
        })
        .map_err(|e| StartFailure::refused(ApiError::internal(e)))?;
        let output = self
            .client
            .invoke_model()
            .model_id(&self.model_id)
            .content_type("application/json")
            .accept("application/json")
            .body(Blob::new(body))
            .send()
            .await
            .map_err(failure_of)?;
        // Bedrock bills a call that answered: a reply we cannot read was
        // still a call the model made, and is charged its bound.
        let unreadable = |why: String| {
            StartFailure::after_reading(ApiError::ModelError(
                format!("an embedding reply that cannot be read: {why}").into(),
            ))
        };
        let reply: TitanReply = serde_json::from_slice(output.body().as_ref())
            .map_err(|e| unreadable(e.to_string()))?;
        if reply.embedding.len() != dimensions as usize {
            return Err(unreadable(format!(
                "{} numbers where {dimensions} were asked for",
                reply.embedding.len()
            )));
        }
        Ok(Embedding {
            vector: reply.embedding,
            // A negative count is nonsense: read as 0, as Converse's are.
            input_tokens: u64::try_from(reply.input_text_token_count).unwrap_or(0),
        })
    }
}

/// A failed `InvokeModel`: free when the model says it processed nothing
/// (a refusal code) or the request never reached it; otherwise (a timeout,
/// a model error) it may have read the input, which is charged.
fn failure_of<R: crate::RawStatus>(err: SdkError<InvokeModelError, R>) -> StartFailure {
    let refused = match &err {
        SdkError::ServiceError(service) => service
            .err()
            .error_code()
            .is_some_and(|code| REFUSAL_CODES.contains(&code)),
        SdkError::ConstructionFailure(_) | SdkError::DispatchFailure(_) => true,
        _ => false,
    };
    let error = model_failure(err);
    if refused {
        StartFailure::refused(error)
    } else {
        StartFailure::after_reading(error)
    }
}

impl Embedder for TitanEmbedder {
    fn is_paid(&self) -> bool {
        true
    }

    fn dimensions(&self) -> &[u32] {
        &TITAN_V2_DIMENSIONS
    }

    fn embed<'a>(&'a self, text: &'a str, dimensions: u32) -> EmbedFuture<'a> {
        Box::pin(self.call(text, dimensions))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titans_body_and_reply_are_spelt_as_bedrock_documents_them() {
        let body = serde_json::to_value(TitanRequest {
            input_text: "hi",
            dimensions: 256,
            normalize: true,
        })
        .unwrap();
        assert_eq!(
            body,
            serde_json::json!({"inputText": "hi", "dimensions": 256, "normalize": true})
        );
        let reply: TitanReply = serde_json::from_str(
            r#"{"embedding": [0.5, -0.5], "inputTextTokenCount": 3, "embeddingsByType": {}}"#,
        )
        .unwrap();
        assert_eq!(
            (reply.embedding, reply.input_text_token_count),
            (vec![0.5, -0.5], 3)
        );
    }
}
