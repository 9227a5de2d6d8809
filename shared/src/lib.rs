//! The shared core of the token-metered chat API: everything the Lambda
//! functions have in common. Each function's crate holds only its handler.
//!
//! A handler reads as one sentence: request -> [`http`] edge -> [`domain`]
//! types -> one [`store`] call -> JSON response, with every failure an
//! [`ApiError`] mapped to HTTP in one place.
//!
//! The `operator` feature adds what only the operator tool (`chat-ops`),
//! the dev tools and the tests call: grants, the audit, account scans and
//! views, migrations, invites made, signing keys rotated. No function
//! enables it; the functions are the workspace's default members, built
//! without it.

pub mod alerts;
pub mod app;
pub mod auth;
pub mod billing;
pub mod catalog;
pub mod clock;
pub mod config;
pub mod cors;
pub mod credits;
pub mod deadline;
pub mod domain;
pub mod embedder;
pub mod error;
pub mod http;
pub mod metrics;
pub mod openai;
pub mod passwords;
pub mod pricing;
pub mod responder;
pub mod response;
pub mod routes;
pub mod served;
pub mod store;

pub use app::App;
pub use config::{Config, Tables};
pub use error::ApiError;
