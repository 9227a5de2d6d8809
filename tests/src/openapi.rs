//! Holding responses to `openapi.yaml`: a validator for the subset of JSON
//! Schema (2020-12, the dialect of OpenAPI 3.1) the spec uses, and the
//! OpenAPI lookups `tests/tests/openapi.rs` needs.
//!
//! Two readings go beyond what JSON Schema asserts by default, both as
//! Schemathesis reads the spec, so that the two hold the API to the same
//! rules: `contentMediaType: application/json` with `contentSchema` asserts
//! that a string is JSON conforming to that schema (2020-12 makes them
//! annotations only), and the `schema` of a `text/event-stream` response is
//! the schema of each event as an event-stream parser gives it,
//! `{"data": ..., "event": "message"}` (what OpenAPI 3.2 calls
//! `itemSchema`; 3.1 has no word for it).
//!
//! The validator is strict about itself: a schema keyword or `format` it
//! does not implement is reported as an error, never skipped, so the spec
//! cannot start relying on a rule that nothing checks. Written here rather
//! than taken from a crate because the subset is small and a full validator
//! would be the largest dependency of the test suite.
//!
//! `pattern` is compiled with `regex-lite` (already built for the AWS SDK).
//! Its syntax and ECMA-262's (what the spec's readers use) agree on the
//! plain classes, repetitions and escapes the spec's patterns use; a pattern
//! outside that common ground would fail to compile here and be reported.

use std::collections::BTreeSet;
use std::fmt;

use lambda_http::{Body, Response};
use serde_json::{Map, Value};

/// Keywords that only annotate; they never make an instance invalid.
const ANNOTATIONS: &[&str] = &[
    "description",
    "title",
    "examples",
    "default",
    "deprecated",
    "readOnly",
    "writeOnly",
    "$comment",
];

/// Every assertion keyword the validator implements.
const ASSERTIONS: &[&str] = &[
    "$ref",
    "type",
    "enum",
    "const",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "minItems",
    "maxItems",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "pattern",
    "format",
    "oneOf",
    "not",
    "if",
    "then",
    "else",
    "contentMediaType",
    "contentSchema",
];

/// The media type of a stream of server-sent events.
pub const EVENT_STREAM: &str = "text/event-stream";

/// Response headers OpenAPI describes elsewhere: `Content-Type` is the key
/// of `content` (and OpenAPI says a `Content-Type` header entry is ignored).
const DESCRIBED_BY_CONTENT: &[&str] = &["content-type"];

/// What the spec documents a response for: one operation, or the requests
/// no operation matches (the root extensions `x-fallback`, and
/// `x-openai-fallback` for those under `/v1/`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target<'a> {
    Operation { method: &'a str, path: &'a str },
    Fallback,
    OpenAiFallback,
}

impl Target<'_> {
    /// Whether this target answers in OpenAI's error shape: the `/v1/`
    /// routes and the requests under `/v1/` no operation matches.
    pub fn is_openai(&self) -> bool {
        match self {
            Target::Operation { path, .. } => chat_core::routes::is_openai(path),
            Target::Fallback => false,
            Target::OpenAiFallback => true,
        }
    }

    /// The target a `Display` string names: the inverse of `to_string`.
    pub fn parse(text: &str) -> Target<'_> {
        match text {
            "x-fallback" => Target::Fallback,
            "x-openai-fallback" => Target::OpenAiFallback,
            _ => {
                let (method, path) = text
                    .split_once(' ')
                    .unwrap_or_else(|| panic!("not a target: {text}"));
                Target::Operation { method, path }
            }
        }
    }
}

impl fmt::Display for Target<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Operation { method, path } => write!(f, "{method} {path}"),
            Target::Fallback => f.write_str("x-fallback"),
            Target::OpenAiFallback => f.write_str("x-openai-fallback"),
        }
    }
}

/// A response as a client sees it: status, headers, body bytes.
#[derive(Clone, Debug)]
pub struct Observed {
    pub status: u16,
    /// Names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Observed {
    pub fn of(response: &Response<Body>) -> Self {
        Observed {
            status: response.status().as_u16(),
            headers: response
                .headers()
                .iter()
                .map(|(name, value)| {
                    (
                        name.as_str().to_ascii_lowercase(),
                        String::from_utf8_lossy(value.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: response.body().to_vec(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The code of a JSON error body, if this is one: `error` in ours,
    /// `error.code` in OpenAI's (`{"error": {"code": ...}}`).
    pub fn error_code(&self) -> Option<String> {
        let body: Value = serde_json::from_slice(&self.body).ok()?;
        error_code_of(&body)
    }

    /// The field an `invalid_field` error names: `field` in ours,
    /// `error.param` in OpenAI's.
    pub fn error_field(&self) -> Option<String> {
        let body: Value = serde_json::from_slice(&self.body).ok()?;
        let field = match body.get("error")? {
            Value::Object(error) => error.get("param")?,
            _ => body.get("field")?,
        };
        field.as_str().map(str::to_owned)
    }
}

/// The code of an error body in either shape (see [`Observed::error_code`]).
pub fn error_code_of(body: &Value) -> Option<String> {
    match body.get("error")? {
        Value::String(code) => Some(code.clone()),
        Value::Object(error) => error.get("code")?.as_str().map(str::to_owned),
        _ => None,
    }
}

/// The `data` of each event of a `text/event-stream` body, or what is wrong
/// with it. Every event this API sends is one `data: ` line and a blank
/// line; anything else (another field, a comment, a multi-line event, a
/// stream that stops mid-event) is reported rather than read leniently.
pub fn event_data(body: &[u8]) -> Result<Vec<String>, String> {
    let text = std::str::from_utf8(body).map_err(|e| format!("the stream is not UTF-8: {e}"))?;
    if !text.is_empty() && !text.ends_with("\n\n") {
        return Err(format!(
            "the stream does not end with a whole event: {text:?}"
        ));
    }
    text.split_terminator("\n\n")
        .map(|event| match event.strip_prefix("data: ") {
            Some(data) if !data.contains(['\n', '\r']) => Ok(data.to_owned()),
            _ => Err(format!("not one data line: {event:?}")),
        })
        .collect()
}

/// One event as an event-stream parser gives it, and as the spec's
/// `text/event-stream` schemas describe it: its data, and its type, the
/// default `message` since the API sends no `event:` field.
pub fn event_object(data: &str) -> Value {
    serde_json::json!({ "data": data, "event": "message" })
}

/// An OpenAPI 3.1 document, already parsed (the caller reads the YAML).
pub struct Spec {
    doc: Value,
}

impl Spec {
    pub fn new(doc: Value) -> Self {
        Spec { doc }
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

        let documented: Map<String, Value> = response
            .get("headers")
            .and_then(Value::as_object)
            .map(|headers| {
                headers
                    .iter()
                    .map(|(name, header)| (name.to_ascii_lowercase(), self.resolve(header).clone()))
                    .collect()
            })
            .unwrap_or_default();
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
        let events = match event_data(body) {
            Ok(events) => events,
            Err(e) => return vec![format!("{context}: {e}")],
        };
        if events.is_empty() {
            return vec![format!("{context}: the stream holds no event")];
        }
        events
            .iter()
            .enumerate()
            .flat_map(|(i, data)| {
                self.validate(schema, &event_object(data))
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
    /// empty when it conforms.
    pub fn validate(&self, schema: &Value, instance: &Value) -> Vec<String> {
        let mut errors = Vec::new();
        self.check(schema, instance, "$", &mut errors);
        errors
    }

    fn check(&self, schema: &Value, instance: &Value, at: &str, errors: &mut Vec<String>) {
        let rules = match schema {
            Value::Bool(true) => return,
            Value::Bool(false) => {
                errors.push(format!("{at}: no value is allowed here"));
                return;
            }
            Value::Object(rules) => rules,
            other => {
                errors.push(format!("{at}: the schema {other} is not a schema"));
                return;
            }
        };
        for (keyword, argument) in rules {
            if ANNOTATIONS.contains(&keyword.as_str()) {
                continue;
            }
            if !ASSERTIONS.contains(&keyword.as_str()) {
                errors.push(format!("{at}: unsupported schema keyword {keyword}"));
                continue;
            }
            self.assert(keyword, argument, rules, instance, at, errors);
        }
    }

    /// One keyword. As JSON Schema has it, a keyword for one type (say
    /// `minLength`) passes any instance of another type; `type` alone
    /// restricts the type.
    fn assert(
        &self,
        keyword: &str,
        argument: &Value,
        rules: &Map<String, Value>,
        instance: &Value,
        at: &str,
        errors: &mut Vec<String>,
    ) {
        let mut fail = |what: String| errors.push(format!("{at}: {what}"));
        match keyword {
            "$ref" => match argument.as_str().and_then(|r| self.pointer(r)) {
                Some(target) => self.check(target, instance, at, errors),
                None => fail(format!("$ref {argument} names nothing")),
            },
            "type" => {
                let names: Vec<&str> = match argument {
                    Value::String(name) => vec![name.as_str()],
                    Value::Array(names) => names.iter().filter_map(Value::as_str).collect(),
                    _ => Vec::new(),
                };
                if names.is_empty() {
                    fail(format!(
                        "type {argument} is not a type name or a list of them"
                    ));
                } else if let Some(unknown) = names.iter().find(|n| !is_type_name(n)) {
                    fail(format!("unknown type name {unknown}"));
                } else if !names.iter().any(|name| has_type(instance, name)) {
                    fail(format!(
                        "expected {}, got {}",
                        names.join(" or "),
                        describe(instance)
                    ));
                }
            }
            "enum" => match argument.as_array() {
                Some(allowed) if allowed.iter().any(|v| json_equal(v, instance)) => {}
                Some(_) => fail(format!("{instance} is not one of {argument}")),
                None => fail(format!("enum {argument} is not a list")),
            },
            "const" => {
                if !json_equal(argument, instance) {
                    fail(format!("expected {argument}, got {instance}"));
                }
            }
            "properties" => {
                let (Some(properties), Some(object)) = (argument.as_object(), instance.as_object())
                else {
                    return;
                };
                for (name, value) in object {
                    if let Some(schema) = properties.get(name) {
                        self.check(schema, value, &format!("{at}.{name}"), errors);
                    }
                }
            }
            "required" => {
                let Some(object) = instance.as_object() else {
                    return;
                };
                for name in argument.as_array().into_iter().flatten() {
                    let name = name.as_str().unwrap_or_default();
                    if !object.contains_key(name) {
                        fail(format!("the required property {name} is missing"));
                    }
                }
            }
            "additionalProperties" => {
                let Some(object) = instance.as_object() else {
                    return;
                };
                let known = rules.get("properties").and_then(Value::as_object);
                for (name, value) in object {
                    if known.is_some_and(|known| known.contains_key(name)) {
                        continue;
                    }
                    if argument == &Value::Bool(false) {
                        errors.push(format!("{at}: the property {name} is not documented"));
                    } else {
                        self.check(argument, value, &format!("{at}.{name}"), errors);
                    }
                }
            }
            "items" => {
                for (i, item) in instance.as_array().into_iter().flatten().enumerate() {
                    self.check(argument, item, &format!("{at}[{i}]"), errors);
                }
            }
            "minItems" | "maxItems" => {
                let (Some(items), Some(bound)) = (instance.as_array(), argument.as_u64()) else {
                    return;
                };
                let len = items.len() as u64;
                if keyword == "minItems" && len < bound {
                    fail(format!("{len} items, fewer than {bound}"));
                }
                if keyword == "maxItems" && len > bound {
                    fail(format!("{len} items, more than {bound}"));
                }
            }
            "minimum" | "maximum" => {
                let (Some(value), Some(bound)) = (instance.as_f64(), argument.as_f64()) else {
                    return;
                };
                if keyword == "minimum" && value < bound {
                    fail(format!("{instance} is below the minimum {argument}"));
                }
                if keyword == "maximum" && value > bound {
                    fail(format!("{instance} is above the maximum {argument}"));
                }
            }
            "minLength" | "maxLength" => {
                let (Some(text), Some(bound)) = (instance.as_str(), argument.as_u64()) else {
                    return;
                };
                // JSON Schema counts code points, as `chars` does.
                let len = text.chars().count() as u64;
                if keyword == "minLength" && len < bound {
                    fail(format!("{len} characters, fewer than {bound}"));
                }
                if keyword == "maxLength" && len > bound {
                    fail(format!("{len} characters, more than {bound}"));
                }
            }
            "pattern" => {
                let Some(text) = instance.as_str() else {
                    return;
                };
                match argument.as_str().map(regex_lite::Regex::new) {
                    Some(Ok(pattern)) if pattern.is_match(text) => {}
                    Some(Ok(_)) => fail(format!("{instance} does not match {argument}")),
                    _ => fail(format!("the pattern {argument} does not compile")),
                }
            }
            "format" => {
                let Some(text) = instance.as_str() else {
                    return;
                };
                let valid = match argument.as_str() {
                    Some("date-time") => is_date_time(text),
                    Some("date") => is_date(text),
                    Some("uuid") => is_uuid(text),
                    _ => {
                        fail(format!("unsupported format {argument}"));
                        return;
                    }
                };
                if !valid {
                    fail(format!("{instance} is not a valid {argument}"));
                }
            }
            "not" => {
                if self.validate(argument, instance).is_empty() {
                    fail(format!("matches the schema it must not: {argument}"));
                }
            }
            // `if` decides which of `then` and `else` applies; those two do
            // nothing alone.
            "if" => {
                let branch = if self.validate(argument, instance).is_empty() {
                    "then"
                } else {
                    "else"
                };
                if let Some(schema) = rules.get(branch) {
                    self.check(schema, instance, at, errors);
                }
            }
            "then" | "else" | "contentSchema" => {}
            // As Schemathesis reads it: a string holding JSON that conforms
            // to `contentSchema`.
            "contentMediaType" => {
                let Some(text) = instance.as_str() else {
                    return;
                };
                if argument != "application/json" {
                    fail(format!("unsupported contentMediaType {argument}"));
                    return;
                }
                match serde_json::from_str::<Value>(text) {
                    Err(e) => fail(format!("{instance} is not JSON: {e}")),
                    Ok(content) => {
                        if let Some(schema) = rules.get("contentSchema") {
                            self.check(schema, &content, &format!("{at}(json)"), errors);
                        }
                    }
                }
            }
            "oneOf" => {
                let Some(branches) = argument.as_array() else {
                    fail(format!("oneOf {argument} is not a list"));
                    return;
                };
                let outcomes: Vec<Vec<String>> = branches
                    .iter()
                    .map(|branch| self.validate(branch, instance))
                    .collect();
                let matched = outcomes.iter().filter(|e| e.is_empty()).count();
                if matched != 1 {
                    let why: Vec<String> = outcomes.into_iter().flatten().collect();
                    fail(format!(
                        "matches {matched} of the oneOf branches, not exactly one ({})",
                        why.join("; ")
                    ));
                }
            }
            _ => unreachable!("{keyword} is in ASSERTIONS but has no rule"),
        }
    }

    /// Every schema keyword and `format` in the spec that the validator does
    /// not implement, and every `pattern` that does not compile, wherever
    /// it sits (also in schemas no test response reaches).
    pub fn unsupported(&self) -> Vec<String> {
        let mut found = Vec::new();
        let mut schemas = Vec::new();
        collect_schemas(&self.doc, "#", &mut schemas);
        for (at, schema) in schemas {
            lint_schema(schema, &at, &mut found);
        }
        found
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

fn is_type_name(name: &str) -> bool {
    matches!(
        name,
        "null" | "boolean" | "object" | "array" | "number" | "integer" | "string"
    )
}

fn has_type(instance: &Value, name: &str) -> bool {
    match name {
        "null" => instance.is_null(),
        "boolean" => instance.is_boolean(),
        "object" => instance.is_object(),
        "array" => instance.is_array(),
        "string" => instance.is_string(),
        "number" => instance.is_number(),
        // JSON Schema: 1.0 is an integer too.
        "integer" => {
            instance.is_i64()
                || instance.is_u64()
                || instance.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        _ => false,
    }
}

fn describe(instance: &Value) -> String {
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

/// JSON Schema equality: numbers by value (1 equals 1.0), the rest
/// structurally.
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y || x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_equal(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

/// RFC 3339 `full-date`, which JSON Schema's `format: date` means:
/// `YYYY-MM-DD`, the day within its month (February 29th only in leap
/// years).
pub fn is_date(text: &str) -> bool {
    text.len() == 10 && full_date(text)
}

/// Whether `text` begins with an RFC 3339 `full-date`.
fn full_date(text: &str) -> bool {
    let b = text.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let (Some(year), Some(month), Some(day)) =
        (number(text, 0, 4), number(text, 5, 7), number(text, 8, 10))
    else {
        return false;
    };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&day)
}

/// The decimal number `text[from..to]`, if it is all ASCII digits. `get`
/// rather than indexing: a multi-byte character where a digit belongs
/// makes the range fall off a char boundary, which is a no.
fn number(text: &str, from: usize, to: usize) -> Option<u32> {
    let part = text.get(from..to)?;
    if part.bytes().all(|c| c.is_ascii_digit()) {
        part.parse().ok()
    } else {
        None
    }
}

/// RFC 3339 `date-time`, which JSON Schema's `format: date-time` means:
/// `YYYY-MM-DDThh:mm:ss[.fraction](Z|+hh:mm|-hh:mm)`, every field in range
/// (February 29th only in leap years; second 60 for a leap second). `T` and
/// `Z` may be lower case, as RFC 3339 allows.
pub fn is_date_time(text: &str) -> bool {
    let b = text.as_bytes();
    if b.len() < 20
        || !full_date(text)
        || !matches!(b[10], b'T' | b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return false;
    }
    let (Some(hour), Some(minute), Some(second)) = (
        number(text, 11, 13),
        number(text, 14, 16),
        number(text, 17, 19),
    ) else {
        return false;
    };
    if hour > 23 || minute > 59 || second > 60 {
        return false;
    }
    let mut rest = &text[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return false;
        }
        rest = &fraction[digits..];
    }
    match rest.as_bytes() {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => {
            let all_digits = [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit());
            let hours = (h1 - b'0') * 10 + (h2 - b'0');
            let minutes = (m1 - b'0') * 10 + (m2 - b'0');
            all_digits && hours <= 23 && minutes <= 59
        }
        _ => false,
    }
}

/// RFC 9562's text form: 8-4-4-4-12 hex digits.
pub fn is_uuid(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
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

/// Reports what the validator would not check in one schema and the
/// schemas inside it.
fn lint_schema(schema: &Value, at: &str, found: &mut Vec<String>) {
    let Some(rules) = schema.as_object() else {
        return;
    };
    for (keyword, argument) in rules {
        let here = format!("{at}/{keyword}");
        if ANNOTATIONS.contains(&keyword.as_str()) {
            continue;
        }
        if !ASSERTIONS.contains(&keyword.as_str()) {
            found.push(format!("{here}: unsupported schema keyword"));
            continue;
        }
        match keyword.as_str() {
            "properties" => {
                for (name, sub) in argument.as_object().into_iter().flatten() {
                    lint_schema(sub, &format!("{here}/{name}"), found);
                }
            }
            "items" | "additionalProperties" | "not" | "if" | "then" | "else" => {
                lint_schema(argument, &here, found)
            }
            "contentSchema" => {
                if rules.get("contentMediaType") != Some(&Value::from("application/json")) {
                    found.push(format!(
                        "{here}: contentSchema without contentMediaType application/json"
                    ));
                }
                lint_schema(argument, &here, found);
            }
            "contentMediaType" if argument != "application/json" => {
                found.push(format!("{here}: unsupported contentMediaType {argument}"));
            }
            "oneOf" => {
                for (i, sub) in argument.as_array().into_iter().flatten().enumerate() {
                    lint_schema(sub, &format!("{here}/{i}"), found);
                }
            }
            "format" if !matches!(argument.as_str(), Some("date-time" | "date" | "uuid")) => {
                found.push(format!("{here}: unsupported format {argument}"));
            }
            "pattern"
                if argument
                    .as_str()
                    .map(regex_lite::Regex::new)
                    .is_none_or(|compiled| compiled.is_err()) =>
            {
                found.push(format!("{here}: {argument} does not compile"));
            }
            _ => {}
        }
    }
}

fn collect_refs(value: &Value, at: &str, found: &mut Vec<(String, String)>) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A small spec in the shape of openapi.yaml, enough to make each rule
    /// fail on purpose.
    fn spec() -> Spec {
        Spec::new(json!({
            "openapi": "3.1.0",
            "paths": {
                "/chat/": {"post": {"responses": {
                    "200": {
                        "description": "ok",
                        "headers": {"Idempotent-Replayed": {"$ref": "#/components/headers/Replayed"}},
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Reply"}}}
                    },
                    "204": {"description": "no body"},
                    "503": {
                        "description": "retry",
                        "headers": {"Retry-After": {"required": true, "schema": {"type": "integer", "minimum": 1}}},
                        "content": {"application/json": {"schema": {"oneOf": [
                            {"$ref": "#/components/schemas/Unavailable"},
                            {"$ref": "#/components/schemas/ModelUnavailable"}
                        ]}}}
                    }
                }}}
            },
            "components": {
                "headers": {"Replayed": {"required": false, "schema": {"const": "true"}}},
                "schemas": {
                    "Reply": {
                        "type": "object",
                        "required": ["user", "timestamp"],
                        "additionalProperties": false,
                        "properties": {
                            "user": {"type": "string", "minLength": 1, "maxLength": 5},
                            "timestamp": {"type": "string", "format": "date-time"},
                            "next": {"type": ["string", "null"], "pattern": "^[a-z]{3}$"},
                            "tokens": {"type": "integer", "minimum": 0, "maximum": 10},
                            "ids": {"type": "array", "maxItems": 2, "items": {"type": "string", "format": "uuid"}},
                            "kind": {"enum": ["a", "b"]}
                        }
                    },
                    "Unavailable": {
                        "type": "object", "required": ["error"], "additionalProperties": false,
                        "properties": {"error": {"const": "unavailable"}}
                    },
                    "ModelUnavailable": {
                        "type": "object", "required": ["error"], "additionalProperties": false,
                        "properties": {"error": {"const": "model_unavailable"}}
                    }
                }
            }
        }))
    }

    fn reply_errors(instance: Value) -> Vec<String> {
        spec().validate(&json!({"$ref": "#/components/schemas/Reply"}), &instance)
    }

    fn observed(status: u16, headers: &[(&str, &str)], body: &str) -> Observed {
        Observed {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
                .collect(),
            body: body.as_bytes().to_vec(),
        }
    }

    const CHAT: Target<'static> = Target::Operation {
        method: "POST",
        path: "/chat/",
    };

    #[test]
    fn a_conforming_body_has_no_errors() {
        let errors = reply_errors(json!({
            "user": "alice",
            "timestamp": "2026-11-25T14:03:07.123Z",
            "next": null,
            "tokens": 10,
            "ids": ["019abc12-3456-7def-8123-456789abcdef"],
            "kind": "a"
        }));
        assert_eq!(errors, Vec::<String>::new());
    }

    #[test]
    fn a_missing_required_property_is_an_error() {
        let errors = reply_errors(json!({"user": "alice"}));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].contains("required property timestamp"),
            "{errors:?}"
        );
    }

    #[test]
    fn a_wrong_type_is_an_error() {
        for (instance, field) in [
            (
                json!({"user": 7, "timestamp": "2026-11-25T14:03:07Z"}),
                "$.user",
            ),
            (
                json!({"user": "a", "timestamp": "2026-11-25T14:03:07Z", "tokens": 1.5}),
                "$.tokens",
            ),
            (
                json!({"user": "a", "timestamp": "2026-11-25T14:03:07Z", "next": 3}),
                "$.next",
            ),
            (json!(["not", "an", "object"]), "$"),
        ] {
            let errors = reply_errors(instance.clone());
            assert!(
                errors
                    .iter()
                    .any(|e| e.starts_with(field) && e.contains("expected")),
                "{instance}: {errors:?}"
            );
        }
    }

    #[test]
    fn an_undocumented_property_is_an_error() {
        let errors = reply_errors(json!({
            "user": "a", "timestamp": "2026-11-25T14:03:07Z", "secret": "x"
        }));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("property secret is not documented"));
    }

    #[test]
    fn bad_date_times_are_errors() {
        for bad in [
            "2026-11-25 14:03:07Z",
            "2026-11-25T14:03:07",
            "2026-13-01T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2026-11-25T24:00:00Z",
            "2026-11-25T14:03:07.Z",
            "2026-11-25T14:03:07+0100",
            "2026-11-25T14:03:07+24:00",
            "26-11-25T14:03:07Z",
            "2026-11-2éT14:03:07Z",
            "",
        ] {
            assert!(!is_date_time(bad), "{bad}");
            let errors = reply_errors(json!({"user": "a", "timestamp": bad}));
            assert!(
                errors
                    .iter()
                    .any(|e| e.contains("not a valid \"date-time\"")),
                "{bad}: {errors:?}"
            );
        }
        for good in [
            "2026-11-25T14:03:07.123Z",
            "2024-02-29T00:00:00Z",
            "2026-11-25t14:03:07z",
            "2016-12-31T23:59:60+00:00",
            "2026-11-25T14:03:07.5-05:30",
        ] {
            assert!(is_date_time(good), "{good}");
        }
    }

    #[test]
    fn dates_are_full_dates_in_range() {
        for good in ["2026-11-25", "2024-02-29", "2000-02-29", "9999-12-31"] {
            assert!(is_date(good), "{good}");
        }
        for bad in [
            "2025-02-29",
            "1900-02-29",
            "2026-04-31",
            "2026-13-01",
            "2026-00-10",
            "2026-11-00",
            "2026-11-25T14:03:07Z",
            "2026-11-5",
            "2026/11/25",
            "26-11-25",
            "2026-11-2é",
            "",
        ] {
            assert!(!is_date(bad), "{bad}");
        }
        let schema = json!({"type": ["string", "null"], "format": "date"});
        assert!(spec().validate(&schema, &json!("2026-11-25")).is_empty());
        assert!(spec().validate(&schema, &json!(null)).is_empty());
        let errors = spec().validate(&schema, &json!("2026-11-31"));
        assert!(errors[0].contains("not a valid \"date\""), "{errors:?}");
    }

    #[test]
    fn bounds_patterns_enums_formats_and_items_are_checked() {
        let errors = reply_errors(json!({
            "user": "toolong",
            "timestamp": "2026-11-25T14:03:07Z",
            "next": "ABC",
            "tokens": -1,
            "ids": ["not-a-uuid", "019abc12-3456-7def-8123-456789abcdef", "x"],
            "kind": "c"
        }));
        for expected in [
            "$.user: 7 characters, more than 5",
            "$.next: \"ABC\" does not match",
            "$.tokens: -1 is below the minimum 0",
            "$.ids: 3 items, more than 2",
            "$.ids[0]: \"not-a-uuid\" is not a valid \"uuid\"",
            "$.kind: \"c\" is not one of",
        ] {
            assert!(
                errors.iter().any(|e| e.starts_with(expected)),
                "{expected} in {errors:?}"
            );
        }
        assert!(
            reply_errors(json!({"user": "", "timestamp": "2026-11-25T14:03:07Z"}))
                .iter()
                .any(|e| e.contains("fewer than 1"))
        );
    }

    #[test]
    fn one_of_needs_exactly_one_branch() {
        let spec = spec();
        let schema = json!({"oneOf": [
            {"$ref": "#/components/schemas/Unavailable"},
            {"$ref": "#/components/schemas/ModelUnavailable"}
        ]});
        assert!(spec
            .validate(&schema, &json!({"error": "unavailable"}))
            .is_empty());
        let none = spec.validate(&schema, &json!({"error": "internal_error"}));
        assert!(
            none[0].contains("matches 0 of the oneOf branches"),
            "{none:?}"
        );
        let both = spec.validate(&json!({"oneOf": [true, {"type": "object"}]}), &json!({}));
        assert!(both[0].contains("matches 2"), "{both:?}");
    }

    #[test]
    fn keywords_and_formats_the_validator_lacks_are_errors_not_passes() {
        let spec = spec();
        let errors = spec.validate(&json!({"anyOf": [true]}), &json!(1));
        assert!(errors[0].contains("unsupported schema keyword anyOf"));
        let errors = spec.validate(&json!({"format": "email"}), &json!("a@b.c"));
        assert!(errors[0].contains("unsupported format"));
        let errors = spec.validate(&json!({"$ref": "#/components/schemas/Nope"}), &json!(1));
        assert!(errors[0].contains("names nothing"));
        let odd = Spec::new(json!({"components": {"schemas": {"X": {
            "properties": {"a": {"allOf": []}, "b": {"format": "email"}, "c": {"pattern": "("}}
        }}}}));
        assert_eq!(odd.unsupported().len(), 3, "{:?}", odd.unsupported());
    }

    #[test]
    fn error_codes_are_read_from_the_const_of_each_branch() {
        let spec = spec();
        let response = spec.response(CHAT, 503).unwrap();
        let codes: Vec<String> = spec.error_codes(response).into_iter().collect();
        assert_eq!(codes, ["model_unavailable", "unavailable"]);
        assert!(spec
            .error_codes(spec.response(CHAT, 204).unwrap())
            .is_empty());
    }

    #[test]
    fn a_documented_response_passes() {
        let good = observed(
            200,
            &[
                ("Content-Type", "application/json"),
                ("Idempotent-Replayed", "true"),
            ],
            r#"{"user": "alice", "timestamp": "2026-11-25T14:03:07.123Z"}"#,
        );
        assert_eq!(spec().check_response(CHAT, &good), Vec::<String>::new());
        let retry = observed(
            503,
            &[("content-type", "application/json"), ("retry-after", "1")],
            r#"{"error": "unavailable"}"#,
        );
        assert_eq!(spec().check_response(CHAT, &retry), Vec::<String>::new());
        assert!(spec()
            .check_response(CHAT, &observed(204, &[], ""))
            .is_empty());
    }

    #[test]
    fn an_undocumented_status_header_or_media_type_fails_the_response() {
        let spec = spec();
        let json = ("content-type", "application/json");
        let body = r#"{"user": "a", "timestamp": "2026-11-25T14:03:07Z"}"#;
        let cases: Vec<(Observed, &str)> = vec![
            (observed(418, &[json], body), "status 418 is not documented"),
            (
                observed(200, &[json, ("x-debug", "1")], body),
                "header x-debug is not documented",
            ),
            (
                observed(200, &[("content-type", "text/html")], body),
                "Content-Type text/html",
            ),
            (observed(200, &[json], "{"), "not JSON"),
            (
                observed(200, &[json, ("idempotent-replayed", "yes")], body),
                "header idempotent-replayed",
            ),
            (
                observed(503, &[json], r#"{"error": "unavailable"}"#),
                "required header retry-after is missing",
            ),
            (
                observed(
                    503,
                    &[json, ("retry-after", "0")],
                    r#"{"error": "unavailable"}"#,
                ),
                "below the minimum",
            ),
            (
                observed(
                    503,
                    &[json, ("retry-after", "soon")],
                    r#"{"error": "unavailable"}"#,
                ),
                "expected integer",
            ),
            (
                observed(
                    503,
                    &[json, ("retry-after", "1")],
                    r#"{"error": "internal_error"}"#,
                ),
                "matches 0 of the oneOf branches",
            ),
            (observed(204, &[], "x"), "without a body"),
            (observed(204, &[json], ""), "no body documented"),
        ];
        for (response, expected) in cases {
            let problems = spec.check_response(CHAT, &response);
            assert!(
                problems.iter().any(|p| p.contains(expected)),
                "{expected} in {problems:?}"
            );
        }
    }

    #[test]
    fn not_and_if_then_else_are_checked() {
        let spec = spec();
        let both = json!({"not": {"required": ["a", "b"]}});
        assert!(spec.validate(&both, &json!({"a": 1})).is_empty());
        let errors = spec.validate(&both, &json!({"a": 1, "b": 2}));
        assert!(errors[0].contains("must not"), "{errors:?}");
        let conditional = json!({
            "if": {"required": ["options"]},
            "then": {"required": ["stream"]},
            "else": {"properties": {"stream": {"const": false}}}
        });
        assert!(spec
            .validate(&conditional, &json!({"options": {}, "stream": true}))
            .is_empty());
        assert!(!spec
            .validate(&conditional, &json!({"options": {}}))
            .is_empty());
        assert!(spec
            .validate(&conditional, &json!({"stream": false}))
            .is_empty());
        assert!(!spec
            .validate(&conditional, &json!({"stream": true}))
            .is_empty());
    }

    #[test]
    fn json_content_in_a_string_is_held_to_its_content_schema() {
        let spec = spec();
        let schema = json!({
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": {"type": "object", "required": ["id"]}
        });
        assert!(spec.validate(&schema, &json!(r#"{"id": 1}"#)).is_empty());
        let errors = spec.validate(&schema, &json!(r#"{"x": 1}"#));
        assert!(errors[0].contains("required property id"), "{errors:?}");
        let errors = spec.validate(&schema, &json!("[DONE"));
        assert!(errors[0].contains("is not JSON"), "{errors:?}");
        let odd = Spec::new(json!({"components": {"schemas": {
            "A": {"contentMediaType": "text/csv"},
            "B": {"contentSchema": {"type": "object"}}
        }}}));
        assert_eq!(odd.unsupported().len(), 2, "{:?}", odd.unsupported());
    }

    #[test]
    fn openai_error_bodies_are_read_by_their_code() {
        let body = json!({"error": {"message": "m", "type": "t", "param": "temperature", "code": "invalid_field"}});
        let observed = observed(400, &[], &body.to_string());
        assert_eq!(observed.error_code().as_deref(), Some("invalid_field"));
        assert_eq!(observed.error_field().as_deref(), Some("temperature"));
        let ours = observed_body(r#"{"error": "invalid_field", "message": "m", "field": "limit"}"#);
        assert_eq!(ours.error_code().as_deref(), Some("invalid_field"));
        assert_eq!(ours.error_field().as_deref(), Some("limit"));
        let spec = Spec::new(json!({"paths": {"/v1/x": {"get": {"responses": {"404": {
            "description": "no",
            "content": {"application/json": {"schema": {
                "type": "object",
                "properties": {"error": {"type": "object", "properties": {"code": {"const": "model_not_found"}}}}
            }}}
        }}}}}}));
        let target = Target::Operation {
            method: "GET",
            path: "/v1/x",
        };
        assert!(target.is_openai());
        let codes = spec.error_codes(spec.response(target, 404).unwrap());
        assert_eq!(codes.into_iter().collect::<Vec<_>>(), ["model_not_found"]);
    }

    fn observed_body(body: &str) -> Observed {
        observed(400, &[], body)
    }

    /// A spec with an operation answering JSON or a stream of events, each
    /// event's data `[DONE]` or JSON with an `n`.
    fn streaming_spec() -> Spec {
        Spec::new(json!({"paths": {"/s": {"post": {"responses": {"200": {
            "description": "ok",
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "text/event-stream": {"schema": {
                    "required": ["data"],
                    "properties": {"data": {"oneOf": [
                        {"const": "[DONE]"},
                        {"type": "string", "contentMediaType": "application/json",
                         "contentSchema": {"type": "object", "required": ["n"]}}
                    ]}}
                }}
            }
        }}}}}}))
    }

    #[test]
    fn an_event_stream_is_checked_event_by_event() {
        let spec = streaming_spec();
        let target = Target::Operation {
            method: "POST",
            path: "/s",
        };
        let sse = ("content-type", "text/event-stream");
        let good = observed(200, &[sse], "data: {\"n\": 1}\n\ndata: [DONE]\n\n");
        assert_eq!(spec.check_response(target, &good), Vec::<String>::new());
        let json = observed(200, &[("content-type", "application/json")], "{}");
        assert_eq!(spec.check_response(target, &json), Vec::<String>::new());
        for (body, expected) in [
            ("data: {\"m\": 1}\n\ndata: [DONE]\n\n", "event 0"),
            ("data: [DONE]\n\ndata: nope\n\n", "event 1"),
            ("data: {\"n\": 1}\n\n: a comment\n\n", "not one data line"),
            (
                "data: {\"n\": 1}\ndata: {\"n\": 2}\n\n",
                "not one data line",
            ),
            ("data: {\"n\": 1}\n\ndata: [DO", "a whole event"),
            ("", "no event"),
        ] {
            let problems = spec.check_response(target, &observed(200, &[sse], body));
            assert!(
                problems.iter().any(|p| p.contains(expected)),
                "{body:?}: {expected} in {problems:?}"
            );
        }
        let html = observed(200, &[("content-type", "text/html")], "x");
        let problems = spec.check_response(target, &html);
        assert!(
            problems[0].contains("documented application/json or text/event-stream"),
            "{problems:?}"
        );
    }
}
