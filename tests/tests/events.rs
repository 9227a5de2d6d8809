//! Every sample event in `events/` goes through its function's handler and
//! gets the status it is meant to show, so the samples can never rot.

use api_tests::*;
use chat_core::App;
use lambda_http::{Body, Request, Response};

/// Each event's file name (without `.json`) and the status it produces in
/// the world `seed` sets up. Adding an event means adding it here.
const EXPECTED: &[(&str, u16)] = &[
    ("register", 201),
    ("register-duplicate", 409),
    ("register-invalid-json", 400),
    ("register-invalid-username", 400),
    ("register-short-password", 400),
    ("register-wrong-type", 400),
    ("login", 200),
    ("login-wrong-password", 401),
    ("login-unknown-user", 401),
    ("login-missing-password", 400),
    ("chat", 200),
    ("chat-base64", 200),
    ("chat-idempotent", 200),
    ("chat-missing-token", 401),
    ("chat-invalid-token", 401),
    ("chat-empty-message", 400),
    ("chat-invalid-json", 400),
    ("balance", 200),
    ("balance-missing-token", 401),
    ("balance-invalid-token", 401),
    ("balance-alert", 200),
    ("balance-alert-invalid", 400),
    ("history", 200),
    ("history-invalid-limit", 400),
    ("history-missing-token", 401),
    ("keys", 201),
    ("keys-list", 200),
    ("keys-missing-name", 400),
    ("keys-delete-unknown", 404),
    ("completions", 200),
    ("completions-stream", 200),
    ("completions-unsupported", 400),
    ("completions-unknown-model", 404),
    ("completions-missing-token", 401),
    ("responses", 200),
    ("responses-stream", 200),
    ("responses-unsupported", 400),
    ("models", 200),
    ("embeddings", 200),
    ("embeddings-chat-model", 400),
    ("embeddings-token-array", 400),
    ("embeddings-missing-token", 401),
    ("usage", 200),
    // Last: logging out ends the session the events above use.
    ("logout-missing-token", 401),
    ("logout", 204),
];

/// The events that are no HTTP request: each file and the alerts the
/// alerts function makes of it (a stream batch from the users table).
const STREAM_EVENTS: &[(&str, usize)] = &[("alerts-stream", 3)];

/// `alice` exists with the sample password, and the token the events carry
/// is a live session of hers (stored as the login handler would store it).
async fn seed(app: &App) {
    assert_eq!(register(app, "alice").await.status(), 201);
    start_events_session(app).await.unwrap();
}

async fn dispatch(app: &App, name: &str, request: Request) -> Response<Body> {
    let function = name.split('-').next().unwrap();
    let result = match function {
        "register" => register::handle(app, request).await,
        "login" => login::handle(app, request).await,
        "chat" => chat::handle(app, request).await,
        "balance" => balance::handle(app, request).await,
        "logout" => logout::handle(app, request).await,
        "history" => history::handle(app, request).await,
        "completions" => {
            let app = sharing(app);
            let response = completions::handle(app, request).await.unwrap();
            return buffered(response).await;
        }
        "responses" => {
            let app = sharing(app);
            let response = responses::handle(app, request).await.unwrap();
            return buffered(response).await;
        }
        "models" => {
            models::handle(
                app,
                &[chat_core::openai::ListedModel {
                    id: "dummy".to_owned(),
                    pricing: chat_core::pricing::Pricing::Flat(100),
                    kind: chat_core::catalog::ModelKind::Chat,
                }],
                request,
            )
            .await
        }
        "keys" => keys::handle(app, request).await,
        "usage" => usage::handle(app, request).await,
        // With the local embedder a deployment without a catalog serves.
        "embeddings" => {
            let mut twin =
                devtools::dynamodb_local::quiet_app(app.config.clone(), app.store.client().clone());
            twin.store = app.store.clone();
            let local = chat_model::local_embedding(app.config.pricing)
                .into_iter()
                .collect();
            twin.models = app.models.clone().with_embedding(local);
            embeddings::handle(&twin, request).await
        }
        other => panic!("events/{name}.json names no function ({other})"),
    };
    result.unwrap()
}

#[tokio::test]
async fn every_event_gets_its_expected_status() {
    let app = fresh_app().await;
    seed(&app).await;
    for (name, status) in EXPECTED {
        let response = dispatch(&app, name, event(name)).await;
        assert_eq!(
            response.status().as_u16(),
            *status,
            "events/{name}.json: {}",
            json_of(&response)
        );
    }
}

#[tokio::test]
async fn every_stream_event_makes_its_expected_alerts() {
    for (name, count) in STREAM_EVENTS {
        let text = std::fs::read_to_string(events_dir().join(format!("{name}.json"))).unwrap();
        let batch: serde_json::Value = serde_json::from_str(&text).unwrap();
        let alerts = alerts::alerts_of_batch(batch).unwrap();
        assert_eq!(alerts.len(), *count, "events/{name}.json: {alerts:?}");
    }
}

#[test]
fn every_event_file_is_listed_and_every_listed_event_exists() {
    let mut on_disk: Vec<String> = std::fs::read_dir(events_dir())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter_map(|name| name.strip_suffix(".json").map(str::to_owned))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = EXPECTED
        .iter()
        .map(|(name, _)| name.to_string())
        .chain(STREAM_EVENTS.iter().map(|(name, _)| name.to_string()))
        .collect();
    listed.sort();
    assert_eq!(on_disk, listed);
}

#[test]
fn every_event_is_a_request_for_its_route_as_its_api_sends_it() {
    for (name, _) in EXPECTED {
        let request = event(name);
        let function = name.split('-').next().unwrap();
        let path = request.uri().path();
        let (_, _, serves) = chat_core::routes::route_for(request.method().as_str(), path)
            .unwrap_or_else(|| panic!("{name}: {} {path} is no route", request.method()));
        assert_eq!(*serves, function, "{name}");
        // The OpenAI routes' events come from the REST API (stage v1, which
        // lambda_http puts back in front of the path), the others' from
        // the HTTP API.
        let text = std::fs::read_to_string(events_dir().join(format!("{name}.json"))).unwrap();
        let raw: serde_json::Value = serde_json::from_str(&text).unwrap();
        if chat_core::routes::is_openai(path) {
            assert_eq!(raw["requestContext"]["stage"], "v1", "{name}");
            assert!(raw.get("version").is_none(), "{name}: a REST API event");
        } else {
            assert_eq!(raw["version"], "2.0", "{name}: an HTTP API event");
        }
    }
}
