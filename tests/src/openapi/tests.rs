//! The validator against a small spec, each rule made to fail on purpose.

use super::*;
use serde_json::{json, Value};

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

/// Whether `text` is a valid `format`, as the validator checks it.
fn conforms(format: &str, text: &str) -> bool {
    spec()
        .validate(&json!({"type": "string", "format": format}), &json!(text))
        .is_empty()
}

fn is_date(text: &str) -> bool {
    conforms("date", text)
}

fn is_date_time(text: &str) -> bool {
    conforms("date-time", text)
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
    // Every 2020-12 keyword is checked now (`anyOf` was not, by the hand
    // validator); one no vocabulary defines, such as OpenAPI 3.0's
    // `nullable`, is reported.
    let errors = spec.validate(&json!({"nullable": true}), &json!(1));
    assert!(errors[0].contains("unsupported schema keyword nullable"));
    let errors = spec.validate(&json!({"format": "email"}), &json!("a@b.c"));
    assert!(errors[0].contains("unsupported format"));
    let errors = spec.validate(&json!({"$ref": "#/components/schemas/Nope"}), &json!(1));
    assert!(errors[0].contains("names nothing"));
    let odd = Spec::new(json!({"components": {"schemas": {"X": {
        "properties": {"a": {"allOf": []}, "b": {"format": "email"}, "c": {"pattern": "("}}
    }}}}));
    assert_eq!(odd.unsupported().len(), 3, "{:?}", odd.unsupported());
    // However deep, and under a `$ref`'s target in the components.
    let deep = Spec::new(json!({"components": {"schemas": {"X": {
        "properties": {"a": {"items": {"oneOf": [{"nullable": true}, {"type": "null"}]}}}
    }}}}));
    assert_eq!(
        deep.unsupported(),
        ["#/components/schemas/X/properties/a/items/oneOf/0: unsupported schema keyword nullable"]
    );
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

#[test]
fn a_response_breaking_the_spec_is_reported_on_every_count() {
    let spec = spec();
    let json = ("content-type", "application/json");
    let body = json!({
        "user": 7,
        "ids": ["019abc12-3456-7def-8123-45678"],
        "secret": "x"
    });
    let problems = spec.check_response(CHAT, &observed(200, &[json], &body.to_string()));
    for expected in [
        "POST /chat/ 200: body $.user: expected string, got a number (7)",
        "POST /chat/ 200: body $: the required property timestamp is missing",
        "POST /chat/ 200: body $.ids[0]: \"019abc12-3456-7def-8123-45678\" is not a valid \"uuid\"",
        "POST /chat/ 200: body $: the property secret is not documented",
    ] {
        assert!(
            problems.iter().any(|p| p == expected),
            "{expected} in {problems:?}"
        );
    }
    assert_eq!(problems.len(), 4, "{problems:?}");

    let spec = streaming_spec();
    let target = Target::Operation {
        method: "POST",
        path: "/s",
    };
    let sse = ("content-type", "text/event-stream");
    let bad_json = observed(200, &[sse], "data: {\"n\": 1\n\n");
    let problems = spec.check_response(target, &bad_json);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("event 0") && p.contains("is not JSON")),
        "{problems:?}"
    );
}
