//! `template.yaml`, the local router, the functions and the table schema held
//! side by side: what runs locally is what AWS gets.

use std::collections::BTreeSet;

use chat_core::routes::{OPENAI_ROUTES, ROUTES};
use devtools::dynamodb_local::repo_root;
use devtools::tables::TABLES;
use serde_yaml::Value;

fn template() -> Value {
    let text = std::fs::read_to_string(repo_root().join("template.yaml")).unwrap();
    serde_yaml::from_str(&text).expect("template.yaml is YAML")
}

fn resources_of_type(template: &Value, kind: &str) -> Vec<(String, Value)> {
    template["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, resource)| resource["Type"] == kind)
        .map(|(id, resource)| (id.as_str().unwrap().to_owned(), resource.clone()))
        .collect()
}

fn function_crates() -> BTreeSet<String> {
    std::fs::read_dir(repo_root().join("functions"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect()
}

fn text(value: &Value) -> &str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("expected a string, got {value:?}"))
}

#[test]
fn every_table_in_the_template_matches_the_schema_the_code_creates() {
    let template = template();
    let tables = resources_of_type(&template, "AWS::DynamoDB::Table");
    assert_eq!(tables.len(), TABLES.len());
    for spec in TABLES {
        let table = &template["Resources"][spec.logical_id]["Properties"];
        assert_eq!(
            table["BillingMode"], "PAY_PER_REQUEST",
            "{}",
            spec.logical_id
        );
        let keys: Vec<(&str, &str)> = table["KeySchema"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|k| (text(&k["AttributeName"]), text(&k["KeyType"])))
            .collect();
        let mut expected = vec![(spec.hash_key, "HASH")];
        expected.extend(spec.range_key.map(|k| (k, "RANGE")));
        assert_eq!(keys, expected, "{}", spec.logical_id);
        let definitions: BTreeSet<(&str, &str)> = table["AttributeDefinitions"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|d| (text(&d["AttributeName"]), text(&d["AttributeType"])))
            .collect();
        let mut wanted: BTreeSet<(&str, &str)> = expected.iter().map(|(k, _)| (*k, "S")).collect();
        let indexes: Vec<&Value> = table["GlobalSecondaryIndexes"]
            .as_sequence()
            .map(|s| s.iter().collect())
            .unwrap_or_default();
        assert_eq!(indexes.len(), spec.indexes.len(), "{}", spec.logical_id);
        for (index, code) in indexes.iter().zip(spec.indexes) {
            wanted.insert((code.hash_key, "S"));
            wanted.insert((code.range_key, "N"));
            assert_eq!(text(&index["IndexName"]), code.name);
            let keys: Vec<(&str, &str)> = index["KeySchema"]
                .as_sequence()
                .unwrap()
                .iter()
                .map(|k| (text(&k["AttributeName"]), text(&k["KeyType"])))
                .collect();
            assert_eq!(keys, [(code.hash_key, "HASH"), (code.range_key, "RANGE")]);
            assert_eq!(text(&index["Projection"]["ProjectionType"]), "INCLUDE");
            let projected: Vec<&str> = index["Projection"]["NonKeyAttributes"]
                .as_sequence()
                .unwrap()
                .iter()
                .map(text)
                .collect();
            assert_eq!(projected, code.projected, "{}", code.name);
        }
        assert_eq!(definitions, wanted, "{}", spec.logical_id);
        let ttl = &table["TimeToLiveSpecification"];
        match spec.ttl_attribute {
            Some(attribute) => {
                assert_eq!(text(&ttl["AttributeName"]), attribute);
                assert_eq!(ttl["Enabled"], true);
            }
            None => assert!(ttl.is_null(), "{} has no TTL in the code", spec.logical_id),
        }
    }
}

#[test]
fn every_function_crate_is_deployed_and_every_route_reaches_its_function() {
    let template = template();
    let functions = resources_of_type(&template, "AWS::Serverless::Function");
    let mut deployed = BTreeSet::new();
    for (id, function) in &functions {
        assert_eq!(
            function["Metadata"]["BuildMethod"], "rust-cargolambda",
            "{id}"
        );
        let binary = text(&function["Metadata"]["BuildProperties"]["Binary"]).to_owned();
        let events = function["Properties"]["Events"].as_mapping().unwrap();
        if binary == "sweeper" {
            // Not behind the API: run every minute by EventBridge.
            assert_eq!(events.len(), 1, "{id}");
            let event = events.values().next().unwrap();
            assert_eq!(event["Type"], "Schedule", "{id}");
            assert_eq!(text(&event["Properties"]["Schedule"]), "rate(1 minute)");
            deployed.insert(binary);
            continue;
        }
        if binary == "fallback" {
            assert_eq!(events.len(), 1, "{id}");
            let event = &events.values().next().unwrap()["Properties"];
            assert!(
                event["Path"].is_null() && event["Method"].is_null(),
                "fallback is the $default route"
            );
            deployed.insert(binary);
            continue;
        }
        // Each route of the function's, and nothing else, on its API:
        // the contract's on the HTTP API (HTTP APIs take no route key
        // ending in "/" and route /chat/ to /chat, so the template names
        // each path without its slash), OpenAI's on the REST API's stage
        // v1 (so the path drops the /v1 the stage puts in front).
        let mut served = BTreeSet::new();
        for event in events.values() {
            let properties = &event["Properties"];
            let path = text(&properties["Path"]).to_owned();
            let method = text(&properties["Method"]).to_owned();
            match text(&event["Type"]) {
                "HttpApi" => {
                    assert_eq!(properties["PayloadFormatVersion"], "2.0", "{id}");
                    served.insert((method, path));
                }
                // A browser's preflight of a route: the function answers
                // it (shared/src/cors.rs), so it is no route of its own.
                "Api" if method == "OPTIONS" => {
                    assert_eq!(text(&properties["RestApiId"]), "OpenAiApi", "{id}");
                }
                "Api" => {
                    assert_eq!(text(&properties["RestApiId"]), "OpenAiApi", "{id}");
                    served.insert((method, format!("/v1{path}")));
                }
                other => panic!("{id}: an event of type {other}"),
            }
        }
        let routes: BTreeSet<(String, String)> = ROUTES
            .iter()
            .chain(OPENAI_ROUTES.iter())
            .filter(|(_, _, f)| *f == binary)
            .map(|(method, path, _)| (method.to_string(), path.trim_end_matches('/').to_owned()))
            .collect();
        assert_eq!(served, routes, "{id}");
        deployed.insert(binary);
    }
    assert_eq!(
        deployed,
        function_crates(),
        "each crate under functions/ is deployed, and only those"
    );
}

#[test]
fn the_local_router_serves_the_same_routes_as_the_template() {
    let manifest: toml::Value = std::fs::read_to_string(repo_root().join("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let router = manifest["workspace"]["metadata"]["lambda"]["watch"]["router"]
        .as_table()
        .expect("[workspace.metadata.lambda.watch.router]");
    let mut paths = BTreeSet::new();
    for (_, path, function) in ROUTES {
        for path in [path, path.trim_end_matches('/')] {
            let served = router.get(path).and_then(|f| f.as_str());
            assert_eq!(served, Some(function), "{path}");
            paths.insert(path);
        }
    }
    // OpenAI's paths, each also with a trailing slash, as the others.
    for (_, path, function) in OPENAI_ROUTES {
        for path in [path.to_owned(), format!("{path}/")] {
            let served = router.get(&path).and_then(|f| f.as_str());
            assert_eq!(served, Some(function), "{path}");
        }
    }
    for catch_all in ["/", "/{*path}"] {
        assert_eq!(
            router.get(catch_all).and_then(|f| f.as_str()),
            Some("fallback"),
            "{catch_all}"
        );
    }
    assert_eq!(
        router.len(),
        paths.len() + 2 * OPENAI_ROUTES.len() + 2,
        "no route the contract does not have"
    );
}

#[test]
fn every_function_gets_the_configuration_it_reads() {
    let template = template();
    let variables = template["Globals"]["Function"]["Environment"]["Variables"]
        .as_mapping()
        .unwrap();
    for name in [
        "USERS_TABLE",
        "CREDENTIALS_TABLE",
        "CHATS_TABLE",
        "CHAT_COST",
        "INITIAL_TOKENS",
        "SESSION_TTL_SECONDS",
        "METRICS_NAMESPACE",
        "CHATS_PER_MINUTE",
        "REGISTRATION",
        "LOGIN_CHECKS_PER_IP",
        "REGISTRATIONS_PER_IP",
    ] {
        assert!(
            variables.contains_key(name),
            "{name} is passed to the functions"
        );
    }
}

/// (metric name, what its one dimension refers to) of each metric an
/// alarm's math expression sums.
fn summed_metrics(template: &Value, alarm: &str) -> BTreeSet<(String, String)> {
    template["Resources"][alarm]["Properties"]["Metrics"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|query| query.get("MetricStat"))
        .map(|stat| {
            let metric = &stat["Metric"];
            let dimension = serde_yaml::to_string(&metric["Dimensions"][0]["Value"]).unwrap();
            (
                text(&metric["MetricName"]).to_owned(),
                dimension.trim().to_owned(),
            )
        })
        .collect()
}

#[test]
fn the_alarms_watch_every_function_and_table() {
    let template = template();
    let expected: BTreeSet<(String, String)> =
        resources_of_type(&template, "AWS::Serverless::Function")
            .into_iter()
            .map(|(id, _)| ("Throttles".to_owned(), format!("!Ref {id}")))
            .collect();
    assert_eq!(
        summed_metrics(&template, "FunctionThrottlesAlarm"),
        expected
    );

    let expected: BTreeSet<(String, String)> = resources_of_type(&template, "AWS::DynamoDB::Table")
        .into_iter()
        .flat_map(|(id, _)| {
            ["ReadThrottleEvents", "WriteThrottleEvents"]
                .map(|kind| (kind.to_owned(), format!("!Ref {id}")))
        })
        .collect();
    assert_eq!(
        summed_metrics(&template, "DynamoDbThrottlesAlarm"),
        expected
    );

    let api = &template["Resources"]["Api5xxAlarm"]["Properties"];
    assert_eq!(api["MetricName"], "5xx");
    assert_eq!(
        serde_yaml::to_string(&api["Dimensions"][0]["Value"])
            .unwrap()
            .trim(),
        "!Ref Api"
    );
    for id in [
        "Api5xxAlarm",
        "FunctionThrottlesAlarm",
        "DynamoDbThrottlesAlarm",
    ] {
        let actions =
            serde_yaml::to_string(&template["Resources"][id]["Properties"]["AlarmActions"])
                .unwrap();
        assert!(
            actions.contains("HasAlarmTopic"),
            "{id} notifies the topic when one is set"
        );
    }
}

#[test]
fn sam_local_gets_settings_for_every_function_that_uses_dynamodb() {
    let text = std::fs::read_to_string(repo_root().join("local/env.json")).unwrap();
    let settings: serde_json::Value = serde_json::from_str(&text).unwrap();
    let template = template();
    for (id, resource) in resources_of_type(&template, "AWS::Serverless::Function") {
        let uses_dynamodb = serde_yaml::to_string(&resource["Properties"]["Policies"])
            .unwrap()
            .contains("dynamodb:");
        if uses_dynamodb {
            assert_eq!(
                settings[&id]["AWS_ENDPOINT_URL"], "http://dynamodb-local:8000",
                "local/env.json has no settings for {id}"
            );
        }
    }
}

#[test]
fn cors_lets_browser_code_read_every_header_a_client_acts_on_and_pins_origins_by_parameter() {
    let template = template();
    let cors =
        &template["Resources"]["Api"]["Properties"]["DefinitionBody"]["x-amazon-apigateway-cors"];
    let exposed: BTreeSet<String> = cors["exposeHeaders"]
        .as_sequence()
        .expect("exposeHeaders is a list")
        .iter()
        .map(|header| text(header).to_ascii_lowercase())
        .collect();
    // What our answers carry besides Content-Type (a CORS-safelisted one).
    for header in [
        chat_core::http::IDEMPOTENT_REPLAYED,
        "retry-after",
        "www-authenticate",
        "allow",
    ] {
        assert!(exposed.contains(header), "{header} is not exposed");
    }
    assert_eq!(
        serde_yaml::to_string(&cors["allowOrigins"]).unwrap().trim(),
        "!Ref CorsAllowOrigin",
        "the allowed origins are the stack's parameter"
    );
}

#[test]
fn the_openai_api_answers_preflights_in_its_functions_for_every_configured_origin() {
    let template = template();
    let resources = &template["Resources"];
    // SAM's Cors on a REST API is a mock with one fixed origin: none here.
    assert!(
        resources["OpenAiApi"]["Properties"]["Cors"].is_null(),
        "the REST API's own CORS could name only one origin"
    );
    for (id, path) in [
        ("CompletionsFunction", "/chat/completions"),
        ("ModelsFunction", "/models"),
    ] {
        let properties = &resources[id]["Properties"];
        assert_eq!(
            serde_yaml::to_string(&properties["Environment"]["Variables"]["CORS_ALLOW_ORIGINS"])
                .unwrap()
                .trim(),
            "!Join\n- ','\n- !Ref CorsAllowOrigin",
            "{id} gets every configured origin"
        );
        let preflight = properties["Events"]
            .as_mapping()
            .unwrap()
            .values()
            .find(|event| event["Properties"]["Method"] == "OPTIONS")
            .unwrap_or_else(|| panic!("{id} takes no OPTIONS"));
        assert_eq!(text(&preflight["Properties"]["Path"]), path);
    }
}
