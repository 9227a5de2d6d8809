//! A validation error as the contract test reports it: "<where>: <what>",
//! where in the instance as a path (`$.choices[0].delta`) and what in the
//! spec's terms ("not documented" for a property `additionalProperties:
//! false` refuses). Kinds the spec does not use keep the crate's message.

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::paths::{Location, LocationSegment};
use jsonschema::ValidationError;
use serde_json::Value;

pub(super) fn describe(error: &ValidationError<'_>) -> String {
    format!("{}: {}", path(error.instance_path()), what(error))
}

fn path(location: &Location) -> String {
    let mut path = String::from("$");
    for segment in location.iter() {
        match segment {
            LocationSegment::Property(name) => {
                path.push('.');
                path.push_str(&name);
            }
            LocationSegment::Index(i) => path.push_str(&format!("[{i}]")),
        }
    }
    path
}

fn what(error: &ValidationError<'_>) -> String {
    use ValidationErrorKind as Kind;
    let instance: &Value = error.instance();
    match error.kind() {
        Kind::Type { kind } => {
            let names: Vec<&str> = match kind {
                TypeKind::Single(name) => vec![name.as_str()],
                TypeKind::Multiple(names) => names.iter().map(|name| name.as_str()).collect(),
            };
            format!("expected {}, got {}", names.join(" or "), a(instance))
        }
        Kind::Required { property } => {
            let name = property.as_str().unwrap_or_default();
            format!("the required property {name} is missing")
        }
        Kind::AdditionalProperties { unexpected } => match unexpected.as_slice() {
            [name] => format!("the property {name} is not documented"),
            names => format!("the properties {} are not documented", names.join(", ")),
        },
        Kind::Constant { expected_value } => format!("expected {expected_value}, got {instance}"),
        Kind::Enum { options } => format!("{instance} is not one of {options}"),
        Kind::Format { format } => format!("{instance} is not a valid {}", Value::from(&**format)),
        Kind::Pattern { pattern } => {
            format!("{instance} does not match {}", Value::from(&**pattern))
        }
        // JSON Schema counts code points, as `chars` does.
        Kind::MinLength { limit } => format!("{} characters, fewer than {limit}", chars(instance)),
        Kind::MaxLength { limit } => format!("{} characters, more than {limit}", chars(instance)),
        Kind::Minimum { limit } => format!("{instance} is below the minimum {limit}"),
        Kind::Maximum { limit } => format!("{instance} is above the maximum {limit}"),
        Kind::MinItems { limit } => format!("{} items, fewer than {limit}", items(instance)),
        Kind::MaxItems { limit } => format!("{} items, more than {limit}", items(instance)),
        Kind::Not { schema } => format!("matches the schema it must not: {schema}"),
        Kind::FalseSchema => "no value is allowed here".to_owned(),
        // Each branch's errors, so a body that fits none says how close
        // each came.
        Kind::OneOfNotValid { context } | Kind::OneOfMultipleValid { context } => {
            let matched = context.iter().filter(|errors| errors.is_empty()).count();
            let why: Vec<String> = context.iter().flatten().map(describe).collect();
            format!(
                "matches {matched} of the oneOf branches, not exactly one ({})",
                why.join("; ")
            )
        }
        Kind::Custom { message, .. } => message.clone(),
        _ => error.to_string(),
    }
}

/// An instance with its JSON type, as a type error names it.
fn a(instance: &Value) -> String {
    let kind = match instance {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    format!("{kind} ({instance})")
}

fn chars(instance: &Value) -> usize {
    instance.as_str().map_or(0, |text| text.chars().count())
}

fn items(instance: &Value) -> usize {
    instance.as_array().map_or(0, Vec::len)
}
