//! The models a function serves, built once per cold start: each with what
//! answers it and its price, found by the id clients name.

use std::sync::Arc;

use crate::catalog::ModelKind;
use crate::embedder::Embedder;
use crate::error::ApiError;
use crate::pricing::Pricing;
use crate::responder::Responder;

/// One model as a request uses it.
#[derive(Clone)]
pub struct ServedModel {
    /// What clients name it (`model`), and what a chat records.
    pub id: String,
    pub responder: Arc<dyn Responder>,
    pub pricing: Pricing,
}

/// An embedding model as `/v1/embeddings` uses it.
#[derive(Clone)]
pub struct EmbeddingModel {
    /// What clients name it, and what its calls record.
    pub id: String,
    pub embedder: Arc<dyn Embedder>,
    /// Per 1000 input tokens; every other part 0 (the catalog's rule).
    pub pricing: Pricing,
}

/// Every model served, and the one a request without `model` gets.
#[derive(Clone)]
pub struct Models {
    served: Vec<ServedModel>,
    default: usize,
    /// The embedding models, apart: no chat route may name one.
    embedding: Vec<EmbeddingModel>,
}

impl Models {
    /// One model, named as its responder names it: a deployment without a
    /// catalog, and the tests of one model.
    pub fn only(responder: Arc<dyn Responder>, pricing: Pricing) -> Self {
        Models {
            served: vec![ServedModel {
                id: responder.model_name().to_owned(),
                responder,
                pricing,
            }],
            default: 0,
            embedding: Vec::new(),
        }
    }

    /// `served`, with `default` for requests that name none; `None` if no
    /// model has that id.
    pub fn new(served: Vec<ServedModel>, default: &str) -> Option<Self> {
        let default = served.iter().position(|m| m.id == default)?;
        Some(Models {
            served,
            default,
            embedding: Vec::new(),
        })
    }

    /// These models, and `embedding` for `/v1/embeddings`.
    #[must_use]
    pub fn with_embedding(mut self, embedding: Vec<EmbeddingModel>) -> Self {
        self.embedding = embedding;
        self
    }

    /// The chat model `id` names, or the default for none; 404 for an id
    /// not served here, 400 for an embedding model.
    pub fn get(&self, id: Option<&str>) -> Result<&ServedModel, ApiError> {
        match id {
            None => Ok(self.default_model()),
            Some(id) => match self.served.iter().find(|m| m.id == id) {
                Some(model) => Ok(model),
                None if self.embedding.iter().any(|m| m.id == id) => {
                    Err(ApiError::WrongModelKind {
                        model: id.to_owned(),
                        kind: ModelKind::Embedding,
                    })
                }
                None => Err(ApiError::UnknownModel(id.to_owned())),
            },
        }
    }

    /// The embedding model `id` names; 404 for an id not served here, 400
    /// for a chat model.
    pub fn embedding(&self, id: &str) -> Result<&EmbeddingModel, ApiError> {
        match self.embedding.iter().find(|m| m.id == id) {
            Some(model) => Ok(model),
            None if self.served.iter().any(|m| m.id == id) => Err(ApiError::WrongModelKind {
                model: id.to_owned(),
                kind: ModelKind::Chat,
            }),
            None => Err(ApiError::UnknownModel(id.to_owned())),
        }
    }

    /// Every embedding model, in the catalog's order.
    pub fn embedding_models(&self) -> &[EmbeddingModel] {
        &self.embedding
    }

    pub fn default_model(&self) -> &ServedModel {
        &self.served[self.default]
    }

    /// Every model, in the catalog's order.
    pub fn all(&self) -> &[ServedModel] {
        &self.served
    }
}
