//! Schemas compiled and checked by the `jsonschema` crate, with the two
//! things the spec needs of it beyond plain 2020-12:
//!
//! - `$ref`s into the spec. The whole document is registered under
//!   [`SPEC_URI`], and a schema's local references (`#/components/...`,
//!   which mean the spec wherever the schema sits, also in a schema a test
//!   writes) are made absolute before it is compiled.
//! - `contentMediaType: application/json` with `contentSchema` as an
//!   assertion, as Schemathesis reads them (2020-12 makes them annotations):
//!   a custom `contentMediaType` keyword.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use jsonschema::{Draft, Keyword, Registry, ValidationError, Validator};
use serde_json::{Map, Value};

use super::dialect;
use super::messages::describe;
use super::spec::collect_refs;

/// Where the spec sits in the registry. Never fetched: the crate is built
/// without retrieval, so a reference outside the spec fails to compile.
const SPEC_URI: &str = "https://openapi.invalid/openapi.yaml";

/// The media type whose content `contentSchema` is held to.
const JSON: &str = "application/json";

/// The spec's schemas, compiled against it.
pub(super) struct Schemas {
    registry: Arc<Registry<'static>>,
    /// Validators by schema text: the contract test validates against the
    /// same few schemas many times, and compiling is the costly part.
    compiled: Mutex<HashMap<String, Arc<Validator>>>,
}

impl Schemas {
    pub fn new(doc: &Value) -> Self {
        let registry = Registry::new()
            .draft(Draft::Draft202012)
            .add(SPEC_URI, doc.clone())
            .and_then(|registry| registry.prepare())
            .unwrap_or_else(|e| panic!("openapi.yaml does not load as a schema resource: {e}"));
        Schemas {
            registry: Arc::new(registry),
            compiled: Mutex::default(),
        }
    }

    /// Every way `instance` breaks `schema` (see `Spec::validate`).
    pub fn validate(&self, doc: &Value, schema: &Value, instance: &Value) -> Vec<String> {
        match self.validator(doc, schema) {
            Ok(validator) => validator
                .iter_errors(instance)
                .map(|e| describe(&e))
                .collect(),
            Err(problems) => problems
                .into_iter()
                .map(|problem| format!("schema#{problem}"))
                .collect(),
        }
    }

    /// What is wrong with `schema` itself, each as "<pointer>: <what>": what
    /// the dialect refuses, and else whatever stops it compiling.
    pub fn problems(&self, doc: &Value, schema: &Value) -> Vec<String> {
        self.validator(doc, schema).err().unwrap_or_default()
    }

    fn validator(&self, doc: &Value, schema: &Value) -> Result<Arc<Validator>, Vec<String>> {
        let key = schema.to_string();
        if let Some(validator) = self.cache().get(&key) {
            return Ok(Arc::clone(validator));
        }
        let mut problems = dialect::problems(schema);
        let mut references = Vec::new();
        collect_refs(schema, "", &mut references);
        for (at, reference) in references {
            let local = reference.strip_prefix('#');
            if local.is_some_and(|pointer| doc.pointer(pointer).is_none()) {
                problems.push(format!("{at}: $ref {reference} names nothing"));
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let validator = Arc::new(compile(&self.registry, schema).map_err(|e| vec![e])?);
        self.cache().insert(key, Arc::clone(&validator));
        Ok(validator)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Validator>>> {
        // A panic elsewhere while it was held leaves the map whole.
        self.compiled.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `schema` as a validator: formats asserted (2020-12 makes them
/// annotations; Schemathesis asserts them), and an unknown one refused
/// rather than passed.
fn compile(registry: &Arc<Registry<'static>>, schema: &Value) -> Result<Validator, String> {
    let for_content = Arc::clone(registry);
    jsonschema::options()
        .with_draft(Draft::Draft202012)
        .with_registry(registry)
        .should_validate_formats(true)
        .should_ignore_unknown_formats(false)
        .with_keyword("contentMediaType", move |parent, media_type, _| {
            json_content(&for_content, parent, media_type)
        })
        .build(&absolute_refs(schema))
        .map_err(|e| format!(": does not compile: {e}"))
}

/// `schema` with each local `$ref` made absolute, naming the spec. (Only
/// `$ref` keys with a string value: no schema in the spec has a `const` or
/// `enum` value of that shape.)
fn absolute_refs(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| match (key.as_str(), value) {
                    ("$ref", Value::String(local)) if local.starts_with('#') => {
                        (key.clone(), Value::String(format!("{SPEC_URI}{local}")))
                    }
                    _ => (key.clone(), absolute_refs(value)),
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(absolute_refs).collect()),
        other => other.clone(),
    }
}

/// The `contentMediaType` keyword: a string holding JSON that conforms to
/// the sibling `contentSchema`, if there is one.
struct JsonContent {
    schema: Option<Validator>,
}

fn json_content<'a>(
    registry: &Arc<Registry<'static>>,
    parent: &'a Map<String, Value>,
    media_type: &'a Value,
) -> Result<Box<dyn for<'i> Keyword<'i>>, ValidationError<'a>> {
    if media_type != JSON {
        return Err(ValidationError::custom(format!(
            "contentMediaType {media_type} is not checked, only {JSON}"
        )));
    }
    let schema = match parent.get("contentSchema") {
        Some(schema) => Some(compile(registry, schema).map_err(ValidationError::custom)?),
        None => None,
    };
    Ok(Box::new(JsonContent { schema }))
}

impl JsonContent {
    fn problems(&self, instance: &Value) -> Vec<String> {
        let Some(text) = instance.as_str() else {
            return Vec::new();
        };
        match serde_json::from_str::<Value>(text) {
            Err(e) => vec![format!("{instance} is not JSON: {e}")],
            Ok(content) => self
                .schema
                .iter()
                .flat_map(|schema| schema.iter_errors(&content).map(|e| describe(&e)))
                .map(|problem| format!("its JSON breaks contentSchema: {problem}"))
                .collect(),
        }
    }
}

impl<'i> Keyword<'i> for JsonContent {
    fn validate(&self, instance: &'i Value) -> Result<(), ValidationError<'i>> {
        match self.problems(instance).into_iter().next() {
            Some(problem) => Err(ValidationError::custom(problem)),
            None => Ok(()),
        }
    }

    fn is_valid(&self, instance: &'i Value) -> bool {
        self.problems(instance).is_empty()
    }

    fn iter_errors(
        &self,
        instance: &'i Value,
    ) -> Box<dyn Iterator<Item = ValidationError<'i>> + 'i> {
        Box::new(
            self.problems(instance)
                .into_iter()
                .map(|problem| -> ValidationError<'i> { ValidationError::custom(problem) }),
        )
    }
}
