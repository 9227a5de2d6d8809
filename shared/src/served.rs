//! The models a function serves, built once per cold start: each with what
//! answers it and its price, found by the id clients name.

use std::sync::Arc;

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

/// Every model served, and the one a request without `model` gets.
#[derive(Clone)]
pub struct Models {
    served: Vec<ServedModel>,
    default: usize,
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
        }
    }

    /// `served`, with `default` for requests that name none; `None` if no
    /// model has that id.
    pub fn new(served: Vec<ServedModel>, default: &str) -> Option<Self> {
        let default = served.iter().position(|m| m.id == default)?;
        Some(Models { served, default })
    }

    /// The model `id` names, or the default for none; 404 for an id not
    /// served here.
    pub fn get(&self, id: Option<&str>) -> Result<&ServedModel, ApiError> {
        match id {
            None => Ok(self.default_model()),
            Some(id) => self
                .served
                .iter()
                .find(|m| m.id == id)
                .ok_or_else(|| ApiError::UnknownModel(id.to_owned())),
        }
    }

    pub fn default_model(&self) -> &ServedModel {
        &self.served[self.default]
    }

    /// Every model, in the catalog's order.
    pub fn all(&self) -> &[ServedModel] {
        &self.served
    }
}
