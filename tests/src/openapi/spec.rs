//! The spec as the contract test reads it: its operations and responses,
//! and a response held to what they document (status, media type, body,
//! headers). Schemas are checked by `jsonschema` (see `schema.rs`); what is
//! here is OpenAPI, which no JSON Schema crate knows.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::events::{named_event_data, named_event_object, EVENT_STREAM};
use super::observed::Observed;
use super::schema::Schemas;
use super::target::Target;

/// Response headers OpenAPI describes elsewhere: `Content-Type` is the key
/// of `content` (and OpenAPI says a `Content-Type` header entry is ignored).
const DESCRIBED_BY_CONTENT: &[&str] = &["content-type"];

/// An OpenAPI 3.1 document, already parsed (the caller reads the YAML).
pub struct Spec {
    doc: Value,
    schemas: Schemas,
}

impl Spec {
    pub fn new(doc: Value) -> Self {
        Spec {
            schemas: Schemas::new(&doc),
            doc,
        }
    }

    pub fn doc(&self) -> &Value {
        &self.doc
    }

    /// The target of a local reference (`#/components/...`).
    pub fn pointer(&self, reference: &str) -> Option<&Value> {
        self.doc.pointer(reference.strip_prefix('#')?)
    }

    /// Follows a Reference Object (`{"$ref": ...}`) to what it names, through
    /// any chain of them. A dangling reference is a bug in the spec.
    pub fn resolve<'a>(&'a self, mut value: &'a Value) -> &'a Value {
        for _ in 0..32 {
            let Some(reference) = value.get("$ref").and_then(Value::as_str) else {
                return value;
            };
            value = self
                .pointer(reference)
                .unwrap_or_else(|| panic!("openapi.yaml: {reference} names nothing"));
        }
        panic!("openapi.yaml: a $ref chain longer than 32, or a cycle")
    }

    /// Every operation as (METHOD, path), in the spec's order.
    pub fn operations(&self) -> Vec<(String, String)> {
        const METHODS: [&str; 8] = [
            "get", "put", "post", "delete", "options", "head", "patch", "trace",
        ];
        let mut operations = Vec::new();
        for (path, item) in self.map_at("/paths") {
            for method in METHODS {
                if item.get(method).is_some() {
                    operations.push((method.to_ascii_uppercase(), path.clone()));
                }
            }
        }
        operations
    }

    pub fn operation(&self, method: &str, path: &str) -> Option<&Value> {
        self.doc
            .get("paths")?
            .get(path)?
            .get(method.to_ascii_lowercase())
    }

    /// The Responses Object of a target.
    pub fn responses(&self, target: Target<'_>) -> &Map<String, Value> {
        let responses = match target {
            Target::Operation { method, path } => self
                .operation(method, path)
                .unwrap_or_else(|| panic!("openapi.yaml has no operation {target}"))
                .get("responses"),
            Target::Fallback => self.doc.pointer("/x-fallback/responses"),
            Target::OpenAiFallback => self.doc.pointer("/x-openai-fallback/responses"),
            Target::OpenAiPreflight => self.doc.pointer("/x-openai-cors/responses"),
        };
        responses
            .and_then(Value::as_object)
            .unwrap_or_else(|| panic!("openapi.yaml: {target} has no responses"))
    }

    /// The documented response of `target` for `status`, references resolved.
    pub fn response(&self, target: Target<'_>, status: u16) -> Option<&Value> {
        self.responses(target)
            .get(&status.to_string())
            .map(|response| self.resolve(response))
    }

    /// The first media type of a response and its schema; `None` for a
    /// response without a body. (Only a success has more than one.)
    pub fn content<'a>(&'a self, response: &'a Value) -> Option<(&'a str, &'a Value)> {
        let content = response.get("content")?.as_object()?;
        let (media_type, media) = content.iter().next()?;
        Some((media_type, media.get("schema")?))
    }

    /// The media types a response documents and each one's schema.
    pub fn media_types<'a>(&'a self, response: &'a Value) -> Vec<(&'a str, &'a Value)> {
        let Some(content) = response.get("content").and_then(Value::as_object) else {
            return Vec::new();
        };
        content
            .iter()
            .filter_map(|(media_type, media)| Some((media_type.as_str(), media.get("schema")?)))
            .collect()
    }

    /// The error codes a response can carry: the code const of its body
    /// schema, or of each `oneOf` branch (`error` in our shape, `error.code`
    /// in OpenAI's). Empty for a success.
    pub fn error_codes(&self, response: &Value) -> BTreeSet<String> {
        let Some((_, schema)) = self.content(response) else {
            return BTreeSet::new();
        };
        let schema = self.resolve(schema);
        let branches: Vec<&Value> = match schema.get("oneOf").and_then(Value::as_array) {
            Some(branches) => branches.iter().collect(),
            None => vec![schema],
        };
        branches
            .into_iter()
            .filter_map(|branch| {
                let branch = self.resolve(branch);
                let code = branch
                    .pointer("/properties/error/const")
                    .or_else(|| branch.pointer("/properties/error/properties/code/const"))?;
                code.as_str().map(str::to_owned)
            })
            .collect()
    }

    /// Everything wrong with `observed` as a response of `target`; empty when
    /// it is exactly what the spec documents: a documented status, the
    /// documented media type and body, every required header present and
    /// valid, and no header the spec does not name.
    pub fn check_response(&self, target: Target<'_>, observed: &Observed) -> Vec<String> {
        let mut problems = Vec::new();
        let Some(response) = self.response(target, observed.status) else {
            problems.push(format!(
                "{target}: status {} is not documented",
                observed.status
            ));
            return problems;
        };
        let context = format!("{target} {}", observed.status);

        match self.content(response) {
            None => {
                if !observed.body.is_empty() {
                    problems.push(format!("{context}: documented without a body, got one"));
                }
                if let Some(media_type) = observed.header("content-type") {
                    problems.push(format!(
                        "{context}: no body documented, yet Content-Type {media_type}"
                    ));
                }
            }
            Some(_) => {
                let got = observed.header("content-type").unwrap_or("(none)");
                let essence = got.split(';').next().unwrap_or("").trim();
                let documented = self.media_types(response);
                match documented
                    .iter()
                    .find(|(media_type, _)| essence.eq_ignore_ascii_case(media_type))
                {
                    None => {
                        let names: Vec<&str> = documented.iter().map(|(m, _)| *m).collect();
                        problems.push(format!(
                            "{context}: Content-Type {got}, documented {}",
                            names.join(" or ")
                        ));
                    }
                    Some((media_type, schema)) if media_type.eq_ignore_ascii_case(EVENT_STREAM) => {
                        problems.extend(self.check_events(schema, &observed.body, &context));
                    }
                    Some((_, schema)) => match serde_json::from_slice::<Value>(&observed.body) {
                        Err(e) => problems.push(format!("{context}: the body is not JSON: {e}")),
                        Ok(body) => problems.extend(
                            self.validate(schema, &body)
                                .into_iter()
                                .map(|e| format!("{context}: body {e}")),
                        ),
                    },
                }
            }
        }

        let named = |headers: Option<&Value>| -> Map<String, Value> {
            headers
                .and_then(Value::as_object)
                .map(|headers| {
                    headers
                        .iter()
                        .map(|(name, header)| {
                            (name.to_ascii_lowercase(), self.resolve(header).clone())
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut documented = named(response.get("headers"));
        // Every answer under `/v1/` may carry the CORS headers that
        // `x-openai-cors` documents once for all of them.
        if target.is_openai() {
            for (name, header) in named(self.doc.pointer("/x-openai-cors/headers")) {
                documented.entry(name).or_insert(header);
            }
        }
        for (name, header) in &documented {
            let required = header.get("required") == Some(&Value::Bool(true));
            match observed.header(name) {
                None if required => {
                    problems.push(format!("{context}: the required header {name} is missing"))
                }
                None => {}
                Some(value) => {
                    let schema = header.get("schema").unwrap_or(&Value::Bool(true));
                    let instance = self.header_instance(schema, value);
                    problems.extend(
                        self.validate(schema, &instance)
                            .into_iter()
                            .map(|e| format!("{context}: header {name} {e}")),
                    );
                }
            }
        }
        for (name, _) in &observed.headers {
            if !documented.contains_key(name) && !DESCRIBED_BY_CONTENT.contains(&name.as_str()) {
                problems.push(format!("{context}: header {name} is not documented"));
            }
        }
        problems
    }

    /// An event stream's problems: each event against the schema of one
    /// event (see the module's documentation).
    fn check_events(&self, schema: &Value, body: &[u8], context: &str) -> Vec<String> {
        let events = match named_event_data(body) {
            Ok(events) => events,
            Err(e) => return vec![format!("{context}: {e}")],
        };
        if events.is_empty() {
            return vec![format!("{context}: the stream holds no event")];
        }
        events
            .iter()
            .enumerate()
            .flat_map(|(i, (kind, data))| {
                self.validate(schema, &named_event_object(kind, data))
                    .into_iter()
                    .map(move |e| format!("{context}: event {i} {e}"))
            })
            .collect()
    }

    /// A header value as the JSON instance its schema describes: headers are
    /// text on the wire, so a number-typed header is read as a number.
    fn header_instance(&self, schema: &Value, value: &str) -> Value {
        let numeric = matches!(
            self.resolve(schema).get("type").and_then(Value::as_str),
            Some("integer" | "number")
        );
        if numeric {
            if let Ok(number) = serde_json::from_str::<serde_json::Number>(value.trim()) {
                return Value::Number(number);
            }
        }
        Value::String(value.to_owned())
    }

    /// Every way `instance` breaks `schema`, each as "<where>: <what>";
    /// empty when it conforms. `schema` is one of the spec's or written
    /// against it: its `$ref`s name places in the spec. A schema that uses
    /// what nothing checks (see `dialect.rs`), or that does not compile, is
    /// reported as the errors, never read leniently.
    pub fn validate(&self, schema: &Value, instance: &Value) -> Vec<String> {
        self.schemas.validate(&self.doc, schema, instance)
    }

    /// Every schema keyword, `format` or `contentMediaType` in the spec that
    /// nothing checks, every `pattern` that does not compile, and every
    /// schema that does not, wherever it sits (also in schemas no test
    /// response reaches).
    pub fn unsupported(&self) -> Vec<String> {
        let mut schemas = Vec::new();
        collect_schemas(&self.doc, "#", &mut schemas);
        schemas
            .into_iter()
            .flat_map(|(at, schema)| {
                self.schemas
                    .problems(&self.doc, schema)
                    .into_iter()
                    .map(move |problem| format!("{at}{problem}"))
            })
            .collect()
    }

    /// Every `$ref` in the document, and where it sits.
    pub fn references(&self) -> Vec<(String, String)> {
        let mut found = Vec::new();
        collect_refs(&self.doc, "#", &mut found);
        found
    }

    fn map_at(&self, pointer: &str) -> Map<String, Value> {
        self.doc
            .pointer(pointer)
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    }
}

/// Every Schema Object in an OpenAPI document: the component schemas and
/// each `schema` of a parameter, header or media type, with where it is.
fn collect_schemas<'a>(value: &'a Value, at: &str, found: &mut Vec<(String, &'a Value)>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let here = format!("{at}/{key}");
                if key == "schema" {
                    found.push((here, child));
                } else if key == "schemas" && at.ends_with("/components") {
                    if let Some(schemas) = child.as_object() {
                        for (name, schema) in schemas {
                            found.push((format!("{here}/{name}"), schema));
                        }
                    }
                } else {
                    collect_schemas(child, &here, found);
                }
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                collect_schemas(child, &format!("{at}/{i}"), found);
            }
        }
        _ => {}
    }
}

/// Every `$ref` under `value`, and where it sits.
pub(super) fn collect_refs(value: &Value, at: &str, found: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let here = format!("{at}/{key}");
                match (key.as_str(), child) {
                    ("$ref", Value::String(reference)) => {
                        found.push((here, reference.clone()));
                    }
                    _ => collect_refs(child, &here, found),
                }
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                collect_refs(child, &format!("{at}/{i}"), found);
            }
        }
        _ => {}
    }
}
