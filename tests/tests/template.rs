//! `template.yaml`, the local router, the functions and the table schema held
//! side by side: what runs locally is what AWS gets.

use std::collections::{BTreeMap, BTreeSet};

use chat_core::routes::{OPENAI_ROUTES, ROUTES, WEB_ROUTES};
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
        // The users table's stream feeds the alerts; the local tables
        // (and the tests of the alerts) get the same.
        let stream = &table["StreamSpecification"]["StreamViewType"];
        match spec.stream {
            Some(view) => assert_eq!(text(stream), view, "{}", spec.logical_id),
            None => assert!(
                stream.is_null(),
                "{} has no stream in the code",
                spec.logical_id
            ),
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
        if binary == "alerts" {
            // Not behind the API: on the users table's stream, with a
            // failed batch split to find its bad record and, after the
            // retries, sent to the failed queue that an alarm watches.
            assert_eq!(events.len(), 1, "{id}");
            let event = events.values().next().unwrap();
            assert_eq!(event["Type"], "DynamoDB", "{id}");
            let properties = &event["Properties"];
            assert_eq!(yaml(&properties["Stream"]), "!GetAtt UsersTable.StreamArn");
            assert_eq!(properties["BisectBatchOnFunctionError"], true);
            assert!(number(&properties["MaximumRetryAttempts"], "retries") >= 1);
            let failed = &properties["DestinationConfig"]["OnFailure"];
            assert_eq!(failed["Type"], "SQS");
            assert_eq!(
                yaml(&failed["Destination"]),
                "!GetAtt AlertsFailedQueue.Arn"
            );
            let alarm = &template["Resources"]["AlertsFailedAlarm"]["Properties"];
            assert_eq!(
                yaml(&alarm["Dimensions"][0]["Value"]),
                "!GetAtt AlertsFailedQueue.QueueName"
            );
            // The bus it publishes on is the stack's, named to it.
            assert_eq!(
                yaml(&function["Properties"]["Environment"]["Variables"]["ALERT_BUS"]),
                "!Ref AlertsBus"
            );
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
        // The page's `/` is the one path that keeps its slash.
        let routes: BTreeSet<(String, String)> = ROUTES
            .iter()
            .chain(OPENAI_ROUTES.iter())
            .chain(WEB_ROUTES.iter())
            .filter(|(_, _, f)| *f == binary)
            .map(|(method, path, _)| {
                let trimmed = path.trim_end_matches('/');
                let path = if trimmed.is_empty() { "/" } else { trimmed };
                (method.to_string(), path.to_owned())
            })
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
    // The web page's paths as they are: a page and its files.
    for (_, path, function) in WEB_ROUTES {
        let served = router.get(path).and_then(|f| f.as_str());
        assert_eq!(served, Some(function), "{path}");
    }
    assert_eq!(
        router.get("/{*path}").and_then(|f| f.as_str()),
        Some("fallback"),
        "the catch-all"
    );
    assert_eq!(
        router.len(),
        paths.len() + 2 * OPENAI_ROUTES.len() + WEB_ROUTES.len() + 1,
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
fn sam_local_gets_the_local_settings_for_every_function_at_once() {
    // One global block ("Parameters"), which sam local applies to every
    // function: a new function needs no entry of its own.
    let text = std::fs::read_to_string(repo_root().join("local/env.json")).unwrap();
    let settings: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        settings,
        serde_json::json!({"Parameters": {
            "AWS_ENDPOINT_URL": "http://dynamodb-local:8000",
            "USERS_TABLE": "users",
            "CREDENTIALS_TABLE": "credentials",
            "CHATS_TABLE": "chats",
        }})
    );
    // sam local sets only variables the template declares: these are
    // declared for every function.
    let template = template();
    let declared = template["Globals"]["Function"]["Environment"]["Variables"]
        .as_mapping()
        .unwrap();
    for name in settings["Parameters"].as_object().unwrap().keys() {
        assert!(
            declared.contains_key(name.as_str()),
            "{name} is not declared in Globals"
        );
    }
}

#[test]
fn the_local_router_is_written_from_the_one_list_of_routes() {
    let manifest = std::fs::read_to_string(repo_root().join("Cargo.toml")).unwrap();
    assert!(
        devtools::routes::with_router(&manifest).unwrap() == manifest,
        "the router in Cargo.toml is stale: run make routes"
    );
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

/// What a condition of the template's `Rules` comes to for these
/// parameters (the template's defaults for the rest): `!Ref`, `!Equals`,
/// `!Not` and `!And`, the intrinsics a rule may use here.
fn evaluate(template: &Value, expr: &Value, given: &BTreeMap<&str, &str>) -> Evaluated {
    let Value::Tagged(tagged) = expr else {
        return Evaluated::Text(match expr {
            Value::String(s) => s.clone(),
            other => serde_yaml::to_string(other).unwrap().trim().to_owned(),
        });
    };
    let args = || tagged.value.as_sequence().unwrap().iter();
    let truth = |v: &Value| match evaluate(template, v, given) {
        Evaluated::Truth(t) => t,
        other => panic!("not a condition: {other:?}"),
    };
    match tagged.tag.to_string().as_str() {
        "!Ref" => {
            let name = text(&tagged.value);
            Evaluated::Text(given.get(name).map_or_else(
                || match &template["Parameters"][name]["Default"] {
                    Value::String(s) => s.clone(),
                    other => serde_yaml::to_string(other).unwrap().trim().to_owned(),
                },
                |v| (*v).to_owned(),
            ))
        }
        "!Equals" => {
            let both: Vec<Evaluated> = args().map(|v| evaluate(template, v, given)).collect();
            Evaluated::Truth(both[0] == both[1])
        }
        "!Not" => Evaluated::Truth(!truth(args().next().unwrap())),
        "!And" => Evaluated::Truth(args().all(truth)),
        other => panic!("an intrinsic this test does not read: {other}"),
    }
}

#[derive(Debug, PartialEq)]
enum Evaluated {
    Text(String),
    Truth(bool),
}

/// Whether CloudFormation refuses a stack with these parameters: some
/// rule applies and one of its assertions fails.
fn refused_by_rules(template: &Value, given: &BTreeMap<&str, &str>) -> bool {
    template["Rules"]
        .as_mapping()
        .unwrap()
        .values()
        .any(|rule| {
            let applies = rule
                .get("RuleCondition")
                .is_none_or(|c| evaluate(template, c, given) == Evaluated::Truth(true));
            applies
                && rule["Assertions"]
                    .as_sequence()
                    .unwrap()
                    .iter()
                    .any(|a| evaluate(template, &a["Assert"], given) == Evaluated::Truth(false))
        })
}

#[test]
fn the_template_refuses_exactly_the_prices_the_functions_refuse() {
    let template = template();
    let mut cases = 0;
    for pricing in ["flat", "usage"] {
        for free in ["false", "true"] {
            for input in ["0", "3"] {
                for output in ["0", "15"] {
                    let given: BTreeMap<&str, &str> = [
                        ("ModelId", "anthropic.claude-3-haiku-20240307-v1:0"),
                        ("Pricing", pricing),
                        ("ModelFree", free),
                        ("ModelInputPrice", input),
                        ("ModelOutputPrice", output),
                    ]
                    .into();
                    // What the template passes the chat function.
                    let env: BTreeMap<&str, &str> = [
                        ("USERS_TABLE", "u"),
                        ("CREDENTIALS_TABLE", "c"),
                        ("CHATS_TABLE", "h"),
                        ("PRICING", pricing),
                        ("MODEL_FREE", free),
                        ("MODEL_INPUT_PRICE", input),
                        ("MODEL_OUTPUT_PRICE", output),
                    ]
                    .into();
                    let functions_refuse =
                        chat_core::Config::from_lookup(|name| env.get(name).map(|v| v.to_string()))
                            .is_err();
                    assert_eq!(
                        refused_by_rules(&template, &given),
                        functions_refuse,
                        "{given:?}"
                    );
                    // A price of 0 is refused unless the model is free.
                    let zero = input == "0" || output == "0";
                    assert_eq!(
                        functions_refuse,
                        pricing == "usage" && zero && free == "false",
                        "{given:?}"
                    );
                    cases += 1;
                }
            }
        }
    }
    assert_eq!(cases, 16);
}

#[test]
fn every_money_event_has_an_alarm_on_its_metric() {
    use chat_core::metrics::MoneyEvent;
    let template = template();
    let namespace =
        &template["Globals"]["Function"]["Environment"]["Variables"]["METRICS_NAMESPACE"];
    let alarms = resources_of_type(&template, "AWS::CloudWatch::Alarm");
    for event in MoneyEvent::ALL {
        let watching: Vec<&String> = alarms
            .iter()
            .filter(|(_, alarm)| alarm["Properties"]["MetricName"] == event.metric())
            .map(|(id, _)| id)
            .collect();
        assert_eq!(watching.len(), 1, "{}: {watching:?}", event.metric());
        let alarm = &template["Resources"][watching[0].as_str()]["Properties"];
        // The namespace the functions write to, and the metric in all (no
        // dimension), which every function's events add to.
        assert_eq!(&alarm["Namespace"], namespace, "{}", event.metric());
        assert!(alarm.get("Dimensions").is_none(), "{}", event.metric());
        assert_eq!(alarm["Threshold"].as_u64(), Some(1), "{}", event.metric());
        let actions = serde_yaml::to_string(&alarm["AlarmActions"]).unwrap();
        assert!(actions.contains("HasAlarmTopic"), "{}", event.metric());
    }
}

#[test]
fn the_metered_functions_get_every_billing_setting() {
    let template = template();
    for id in ["ChatFunction", "CompletionsFunction", "ResponsesFunction"] {
        let variables = &template["Resources"][id]["Properties"]["Environment"]["Variables"];
        for name in [
            "MODEL_ID",
            "CATALOG",
            "PRICING",
            "MODEL_INPUT_PRICE",
            "MODEL_OUTPUT_PRICE",
            "MODEL_FREE",
            "MODEL_TOKENS_PER_SECOND",
            "OPEN_CALLS_PER_USER",
        ] {
            assert!(variables.get(name).is_some(), "{id} gets {name}");
        }
    }
}

/// In AWS the catalog is the `Catalog` parameter: every function that
/// serves models reads it, a stack names its models one way only, and the
/// metered functions may call exactly the Bedrock models it grants.
#[test]
fn the_catalog_parameter_reaches_every_function_serving_models_with_its_grants() {
    let template = template();
    for id in [
        "ChatFunction",
        "CompletionsFunction",
        "ResponsesFunction",
        "ModelsFunction",
        "EmbeddingsFunction",
    ] {
        let variables = &template["Resources"][id]["Properties"]["Environment"]["Variables"];
        assert_eq!(yaml(&variables["CATALOG"]), "!Ref Catalog", "{id}");
    }
    let catalog = r#"{"default":"dummy","models":[{"id":"dummy","flat":100}]}"#;
    let with_model = "anthropic.claude-3-haiku-20240307-v1:0";
    for (given, refused) in [
        (vec![("Catalog", catalog)], false),
        (vec![("ModelId", with_model)], false),
        (vec![("Catalog", catalog), ("ModelId", with_model)], true),
    ] {
        let given: BTreeMap<&str, &str> = given.into_iter().collect();
        assert_eq!(refused_by_rules(&template, &given), refused, "{given:?}");
    }
    for id in ["ChatFunction", "CompletionsFunction", "ResponsesFunction"] {
        let statements = template["Resources"][id]["Properties"]["Policies"][0]["Statement"]
            .as_sequence()
            .unwrap();
        let bedrock: Vec<&Value> = statements
            .iter()
            .filter(|s| yaml(s).contains("bedrock:"))
            .collect();
        assert_eq!(bedrock.len(), 1, "{id}: one Bedrock grant");
        let (condition, grant, otherwise) = conditional(bedrock[0], "the Bedrock grant");
        assert_eq!(condition, "CallsBedrock", "{id}");
        assert_eq!(yaml(otherwise), "!Ref AWS::NoValue", "{id}");
        assert_eq!(
            yaml(&grant["Action"]),
            "bedrock:InvokeModelWithResponseStream",
            "{id}"
        );
        let (condition, catalogs, single) = conditional(&grant["Resource"], "its resource");
        assert_eq!(condition, "HasCatalog", "{id}");
        assert_eq!(yaml(catalogs), "!Ref CatalogBedrockModelArns", "{id}");
        assert!(
            yaml(single).ends_with("foundation-model/${ModelId}"),
            "{id}"
        );
    }
    // Embeddings: InvokeModel on exactly the catalog's models (only a
    // catalog names an embedding model), when it grants any.
    let statements = template["Resources"]["EmbeddingsFunction"]["Properties"]["Policies"][0]
        ["Statement"]
        .as_sequence()
        .unwrap();
    let bedrock: Vec<&Value> = statements
        .iter()
        .filter(|s| yaml(s).contains("bedrock:"))
        .collect();
    assert_eq!(bedrock.len(), 1, "embeddings: one Bedrock grant");
    let (condition, grant, otherwise) = conditional(bedrock[0], "the Bedrock grant");
    assert_eq!(condition, "HasCatalogGrants");
    assert_eq!(yaml(otherwise), "!Ref AWS::NoValue");
    assert_eq!(yaml(&grant["Action"]), "bedrock:InvokeModel");
    assert_eq!(yaml(&grant["Resource"]), "!Ref CatalogBedrockModelArns");
}

// ------------------------------------------------------ security review
//
// What a team's scanner (checkov) asks of the template, fixed or declined
// in place (docs/operations.md#security-review); `make validate` runs
// checkov itself (scripts/checkov.sh). These hold the fixes, so that
// dropping one fails here, whatever checkov's version makes of it.

/// A value as the template writes it, e.g. `!Ref ChatConcurrency`.
fn yaml(value: &Value) -> String {
    serde_yaml::to_string(value).unwrap().trim().to_owned()
}

/// The parts of `!If [condition, then, else]`.
fn conditional<'a>(value: &'a Value, what: &str) -> (&'a str, &'a Value, &'a Value) {
    let Value::Tagged(tagged) = value else {
        panic!("{what}: expected !If [...], got {value:?}");
    };
    assert!(
        tagged.tag == "If",
        "{what}: expected !If, got {}",
        tagged.tag
    );
    let branches = tagged.value.as_sequence().unwrap();
    assert_eq!(branches.len(), 3, "{what}");
    (text(&branches[0]), &branches[1], &branches[2])
}

fn number(value: &Value, what: &str) -> u64 {
    value
        .as_u64()
        .unwrap_or_else(|| panic!("{what}: expected a number, got {value:?}"))
}

/// Lambda keeps this much of an account's concurrency unreserved.
const UNRESERVED_MINIMUM: u64 = 100;
/// An account's concurrency limit unless raised (some new accounts get less).
const DEFAULT_ACCOUNT_LIMIT: u64 = 1000;

#[test]
fn every_function_reserves_a_bounded_concurrency_that_leaves_the_account_its_share() {
    let template = template();
    let parameters = &template["Parameters"];
    let switch = &parameters["ReserveConcurrency"];
    assert_eq!(switch["Default"], "true", "reserved by default");
    let mut total = 0;
    for (id, function) in resources_of_type(&template, "AWS::Serverless::Function") {
        // !If [ReservesConcurrency, <amount>, !Ref AWS::NoValue]: nothing
        // only when a deployer turns the reservations off.
        let (condition, amount, otherwise) = conditional(
            &function["Properties"]["ReservedConcurrentExecutions"],
            &format!("{id}'s ReservedConcurrentExecutions"),
        );
        assert_eq!(condition, "ReservesConcurrency", "{id}");
        assert_eq!(yaml(otherwise), "!Ref AWS::NoValue", "{id}");
        let binary = text(&function["Metadata"]["BuildProperties"]["Binary"]);
        let amount = match amount {
            Value::Tagged(reference) if reference.tag == "Ref" => {
                let name = text(&reference.value);
                let parameter = &parameters[name];
                assert_eq!(parameter["Type"], "Number", "{name}");
                // 0 would stop the function altogether.
                assert!(number(&parameter["MinValue"], name) >= 1, "{name}");
                assert!(!parameter["MaxValue"].is_null(), "{name} is bounded");
                number(&parameter["Default"], name)
            }
            fixed => number(fixed, &id),
        };
        if binary == "sweeper" {
            assert_eq!(amount, 1, "one sweep at a time");
        }
        total += amount;
    }
    // A burst the stage lets through is not throttled again by Lambda.
    let default = |name: &str| number(&parameters[name]["Default"], name);
    assert!(default("AuthConcurrency") >= default("RegisterLoginRateLimit"));
    assert!(default("ChatConcurrency") >= default("ThrottlingBurstLimit"));
    assert!(
        total + UNRESERVED_MINIMUM <= DEFAULT_ACCOUNT_LIMIT,
        "the defaults reserve {total}: more than an account's default limit can give"
    );
    // The switch's description tells a deployer what the defaults take.
    let description = text(&switch["Description"]);
    assert!(
        description.contains(&format!("{total} in all"))
            && description.contains(&format!("at least {}", total + UNRESERVED_MINIMUM)),
        "ReserveConcurrency's description states the defaults' total, {total}: {description}"
    );
    assert_eq!(
        yaml(&template["Conditions"]["ReservesConcurrency"]),
        "!Equals\n- !Ref ReserveConcurrency\n- 'true'"
    );
}

#[test]
fn the_openai_api_logs_every_request_where_no_account_wide_role_is_needed() {
    let template = template();
    let resources = &template["Resources"];
    let log = &resources["OpenAiApi"]["Properties"]["AccessLogSetting"];
    assert_eq!(
        yaml(&log["DestinationArn"]),
        "!GetAtt OpenAiAccessLogStream.Arn"
    );
    // One JSON object a line: Firehose writes records back to back.
    let format = text(&log["Format"]);
    assert!(format.ends_with("}\n"), "{format:?}");
    let line: serde_json::Value =
        serde_json::from_str(format).expect("the access log format is one JSON object");
    for field in ["requestId", "ip", "requestTime", "method", "path", "status"] {
        let value = line[field].as_str().unwrap_or_default();
        assert!(value.starts_with("$context."), "{field}: {value:?}");
    }

    let stream = &resources["OpenAiAccessLogStream"];
    assert_eq!(stream["Type"], "AWS::KinesisFirehose::DeliveryStream");
    let stream = &stream["Properties"];
    // API Gateway logs only to streams of this name.
    assert!(
        yaml(&stream["DeliveryStreamName"]).contains("amazon-apigateway-"),
        "{:?}",
        stream["DeliveryStreamName"]
    );
    let destination = &stream["ExtendedS3DestinationConfiguration"];
    assert_eq!(
        yaml(&destination["BucketARN"]),
        "!GetAtt OpenAiAccessLogBucket.Arn"
    );
    assert_eq!(
        yaml(&destination["RoleARN"]),
        "!GetAtt OpenAiAccessLogRole.Arn"
    );

    let bucket = &resources["OpenAiAccessLogBucket"];
    assert_eq!(bucket["DeletionPolicy"], "Retain");
    let bucket = &bucket["Properties"];
    let blocks = &bucket["PublicAccessBlockConfiguration"];
    for setting in [
        "BlockPublicAcls",
        "BlockPublicPolicy",
        "IgnorePublicAcls",
        "RestrictPublicBuckets",
    ] {
        assert_eq!(blocks[setting], true, "{setting}");
    }
    let rules = bucket["LifecycleConfiguration"]["Rules"]
        .as_sequence()
        .unwrap();
    assert!(
        rules
            .iter()
            .any(|rule| yaml(&rule["ExpirationInDays"]) == "!Ref LogRetentionDays"),
        "the access log is kept as long as the other logs"
    );

    // The stack does not set the account's API Gateway CloudWatch role.
    assert!(resources_of_type(&template, "AWS::ApiGateway::Account").is_empty());
}

#[test]
fn a_customer_key_for_every_table_and_log_group_is_one_parameter_away() {
    let template = template();
    let by_parameter = |value: &Value, what: &str| {
        let (condition, key, otherwise) = conditional(value, what);
        assert_eq!(condition, "HasKmsKey", "{what}");
        assert_eq!(yaml(key), "!Ref KmsKeyArn", "{what}");
        assert_eq!(yaml(otherwise), "!Ref AWS::NoValue", "{what}");
    };
    let groups = resources_of_type(&template, "AWS::Logs::LogGroup");
    assert!(!groups.is_empty());
    for (id, group) in groups {
        by_parameter(&group["Properties"]["KmsKeyId"], &id);
    }
    for (id, table) in resources_of_type(&template, "AWS::DynamoDB::Table") {
        let sse = &table["Properties"]["SSESpecification"];
        assert_eq!(sse["SSEEnabled"], true, "{id}");
        by_parameter(&sse["KMSMasterKeyId"], &id);
    }
    assert_eq!(template["Parameters"]["KmsKeyArn"]["Default"], "");
    assert_eq!(
        yaml(&template["Conditions"]["HasKmsKey"]),
        "!Not\n- !Equals\n  - !Ref KmsKeyArn\n  - ''"
    );
}

/// The checks the stack passes by design: never skipped, so that a skip
/// cannot quietly undo one of the fixes above.
const FIXED: [&str; 5] = [
    "CKV_AWS_115", // reserved concurrency
    "CKV_AWS_76",  // the REST API's access log
    "CKV_AWS_95",  // the HTTP API's access log
    "CKV_AWS_119", // a customer key for the tables
    "CKV_AWS_158", // a customer key for the log groups
];

#[test]
fn every_checkov_skip_says_why_in_the_resource_it_skips() {
    let template = template();
    let mut skipped = 0;
    for (id, resource) in template["Resources"].as_mapping().unwrap() {
        let id = text(id);
        let checkov = &resource["Metadata"]["checkov"];
        if checkov.is_null() {
            continue;
        }
        let skips = checkov["skip"]
            .as_sequence()
            .unwrap_or_else(|| panic!("{id}: checkov's skips are a list"));
        let mut seen = BTreeSet::new();
        for skip in skips {
            let check = text(&skip["id"]);
            let (prefix, number) = check.rsplit_once('_').unwrap_or_default();
            assert!(
                matches!(prefix, "CKV_AWS" | "CKV2_AWS")
                    && !number.is_empty()
                    && number.bytes().all(|b| b.is_ascii_digit()),
                "{id}: {check:?} is not a checkov check id"
            );
            assert!(seen.insert(check), "{id} skips {check} twice");
            assert!(
                !FIXED.contains(&check),
                "{id} skips {check}, which the stack fixes"
            );
            // One line a reviewer can accept: a sentence, not a placeholder.
            let reason = skip["comment"].as_str().unwrap_or_default().trim();
            assert!(
                reason.len() >= 40 && !reason.contains('\n') && reason.ends_with('.'),
                "{id} skips {check} without a one-line reason: {reason:?}"
            );
            skipped += 1;
        }
    }
    assert!(skipped > 0);
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
