//! The spec's dialect of JSON Schema: what its schemas may say, so that none
//! relies on a rule nothing checks. JSON Schema ignores a keyword it does not
//! know (a typo, or OpenAPI 3.0's `nullable`) and, by default, any `format`;
//! a spec using either would document a rule no validator holds the API to.
//!
//! Written as a meta-schema extending 2020-12's (as OpenAPI's own dialect
//! does): every keyword of the 2020-12 vocabularies, all of which
//! `jsonschema` implements, and no other (`unevaluatedProperties: false`,
//! which `$dynamicRef` carries into every subschema); only the formats in
//! [`FORMATS`]; `contentSchema` only for JSON content (see `schema.rs`); and
//! `pattern` a valid ECMA-262 regular expression (the meta-schema's own
//! `format: regex`).

use std::sync::LazyLock;

use jsonschema::error::ValidationErrorKind;
use jsonschema::{Draft, ValidationError, Validator};
use serde_json::{json, Value};

/// The formats the spec may use: each one `jsonschema` asserts (RFC 3339
/// `full-date` and `date-time`, RFC 9562 UUIDs), as Schemathesis does.
pub const FORMATS: &[&str] = &["date", "date-time", "uuid"];

static DIALECT: LazyLock<Validator> = LazyLock::new(|| {
    jsonschema::options()
        .with_draft(Draft::Draft202012)
        .should_validate_formats(true)
        .build(&json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": "https://openapi.invalid/dialect",
            "$dynamicAnchor": "meta",
            "$ref": "https://json-schema.org/draft/2020-12/schema",
            "properties": {
                "format": {"enum": FORMATS},
                "contentMediaType": {"const": "application/json"}
            },
            "dependentRequired": {"contentSchema": ["contentMediaType"]},
            "unevaluatedProperties": false
        }))
        .expect("the dialect compiles")
});

/// What the dialect refuses in `schema`, each as "<pointer>: <what>", the
/// pointer within `schema` (empty for the schema itself).
pub(super) fn problems(schema: &Value) -> Vec<String> {
    let errors: Vec<ValidationError<'_>> = DIALECT.iter_errors(schema).collect();
    let at = |error: &ValidationError<'_>| error.instance_path().as_str().to_owned();
    // A subschema with an error evaluates none of its keywords, so the
    // keyword that holds it is reported as unknown too: only the error
    // inside is kept.
    let holds_an_error = |keyword: &str| {
        errors
            .iter()
            .any(|error| at(error) == keyword || at(error).starts_with(&format!("{keyword}/")))
    };
    let mut problems = Vec::new();
    for error in &errors {
        let here = at(error);
        for (keyword, what) in what(error) {
            if keyword.is_none_or(|keyword| !holds_an_error(&format!("{here}/{keyword}"))) {
                problems.push(format!("{here}: {what}"));
            }
        }
    }
    problems
}

/// What one error says, as (the unknown keyword, if that is what it is
/// about, and the message).
fn what(error: &ValidationError<'_>) -> Vec<(Option<String>, String)> {
    let value = error.instance();
    let keyword = error.instance_path().iter().last().map(|k| k.to_string());
    let one = |what: String| vec![(None, what)];
    match (error.kind(), keyword.as_deref()) {
        (ValidationErrorKind::UnevaluatedProperties { unexpected }, _) => unexpected
            .iter()
            .map(|keyword| {
                let what = format!("unsupported schema keyword {keyword}");
                (Some(keyword.clone()), what)
            })
            .collect(),
        (ValidationErrorKind::Enum { .. }, Some("format")) => {
            one(format!("unsupported format {value}"))
        }
        (ValidationErrorKind::Constant { .. }, Some("contentMediaType")) => {
            one(format!("unsupported contentMediaType {value}"))
        }
        (ValidationErrorKind::Required { property }, _) if property == "contentMediaType" => {
            one("contentSchema without contentMediaType application/json".to_owned())
        }
        (ValidationErrorKind::Format { .. }, Some("pattern")) => {
            one(format!("the pattern {value} does not compile"))
        }
        _ => one(error.to_string()),
    }
}
