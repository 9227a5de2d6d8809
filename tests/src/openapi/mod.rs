//! Holding responses to `openapi.yaml`: the OpenAPI lookups
//! `tests/tests/openapi.rs` needs, with schemas checked by the `jsonschema`
//! crate (2020-12, the dialect of OpenAPI 3.1).
//!
//! Two readings go beyond what JSON Schema asserts by default, both as
//! Schemathesis reads the spec, so that the two hold the API to the same
//! rules: `contentMediaType: application/json` with `contentSchema` asserts
//! that a string is JSON conforming to that schema (2020-12 makes them
//! annotations only; `schema.rs`), and the `schema` of a `text/event-stream`
//! response is the schema of each event as an event-stream parser gives it,
//! `{"data": ..., "event": "message"}` (what OpenAPI 3.2 calls
//! `itemSchema`; 3.1 has no word for it; `events.rs`). Formats are asserted
//! too.
//!
//! Strict about the spec: a schema keyword, `format` or content type that
//! nothing checks is reported as an error, never skipped (`dialect.rs`), so
//! the spec cannot start relying on a rule that nothing checks.
//!
//! - `target.rs`, `observed.rs`: what a response is for, and what came back;
//! - `spec.rs`: the document's operations and responses, and a response
//!   held to them;
//! - `schema.rs`, `dialect.rs`, `messages.rs`: the glue to `jsonschema`.

mod dialect;
mod events;
mod messages;
mod observed;
mod schema;
mod spec;
mod target;
#[cfg(test)]
mod tests;

pub use dialect::FORMATS;
pub use events::{event_data, event_object, named_event_data, named_event_object, EVENT_STREAM};
pub use observed::{error_code_of, Observed};
pub use spec::Spec;
pub use target::Target;
