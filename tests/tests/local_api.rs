//! End to end over HTTP: `make run` as a user starts it, then the API driven
//! over the loopback like curl would, then everything it started is gone.

use std::sync::Arc;

use api_tests::hostile::{generate, Material};
use api_tests::http::{send, send_raw, HttpResponse};
use api_tests::local_api::LocalApi;
use api_tests::{item_counts, item_counts_beside_login_failures, past_failures};
use chat_core::clock::Timestamp;
use serde_json::json;

const JSON: (&str, &str) = ("Content-Type", "application/json");

fn post(port: u16, path: &str, body: &str, token: Option<&str>) -> HttpResponse {
    let auth = token.map(|t| format!("Token {t}"));
    let mut headers = vec![JSON];
    if let Some(auth) = &auth {
        headers.push(("Authorization", auth));
    }
    send(port, "POST", path, &headers, body.as_bytes())
}

fn balance(port: u16, token: &str) -> HttpResponse {
    send(
        port,
        "GET",
        "/balance/",
        &[("Authorization", &format!("Token {token}"))],
        b"",
    )
}

fn login(port: u16, username: &str) -> String {
    let response = post(
        port,
        "/login/",
        &json!({"username": username, "password": "correct-horse-battery"}).to_string(),
        None,
    );
    assert_eq!(response.status, 200, "{response:?}");
    response.json()["token"].as_str().unwrap().to_owned()
}

fn register(port: u16, username: &str) -> HttpResponse {
    post(
        port,
        "/register/",
        &json!({"username": username, "password": "correct-horse-battery"}).to_string(),
        None,
    )
}

#[test]
fn the_local_api_serves_the_contract_over_http_and_stops_cleanly() {
    // Several instances of each function, as Lambda scales out: the exact
    // counts below must hold however the requests spread over them.
    let api = LocalApi::start_with(&[("CONCURRENCY", "4")]);
    let port = api.port;

    let alice = journey(port);
    errors(port);
    concurrent_chats(port);
    wrong_passwords(&api);
    hostile_requests(&api, &alice);
    non_utf8_bytes(&api, &alice);
    logout(port, &alice);

    let (group, dynamodb_port) = (api.pid(), api.dynamodb_port);
    drop(api);
    let left = std::process::Command::new("pgrep")
        .args(["-g", &group.to_string()])
        .output()
        .unwrap();
    assert!(
        left.stdout.is_empty(),
        "processes left running: {}",
        String::from_utf8_lossy(&left.stdout)
    );
    for (what, port) in [("API", port), ("DynamoDB Local", dynamodb_port)] {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "{what} still listens on {port}"
        );
    }
}

/// Registers and logs in alice, chats once; returns her token.
fn journey(port: u16) -> String {
    let response = register(port, "alice");
    assert_eq!(response.status, 201);
    assert_eq!(
        response.json(),
        json!({"message": "User registered successfully."})
    );

    let token = login(port, "alice");
    let response = post(
        port,
        "/chat/",
        r#"{"message": "Hello, how are you?"}"#,
        Some(&token),
    );
    assert_eq!(response.status, 200, "{response:?}");
    let body = response.json();
    assert_eq!(
        (body["user"].as_str(), body["message"].as_str()),
        (Some("alice"), Some("Hello, how are you?"))
    );
    assert_eq!(body["response"], "AI response");
    assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));

    let response = balance(port, &token);
    assert_eq!(
        (response.status, response.json()),
        (200, json!({"tokens": 3900}))
    );

    // History, with the query string as the emulator passes it on.
    let history = |query: &str| {
        send(
            port,
            "GET",
            &format!("/chats/{query}"),
            &[("Authorization", &token)],
            b"",
        )
    };
    let response = history("?limit=1");
    assert_eq!(response.status, 200, "{response:?}");
    let page = response.json();
    assert_eq!(page["chats"][0]["message"], "Hello, how are you?");
    assert_eq!(page["chats"][0]["timestamp"], body["timestamp"]);
    assert_eq!(page["next_cursor"], serde_json::Value::Null);
    let response = history("?limit=0");
    assert_eq!(
        (response.status, &response.json()["field"]),
        (400, &json!("limit"))
    );
    token
}

fn errors(port: u16) {
    let cases: Vec<(HttpResponse, u16, &str)> = vec![
        (register(port, "alice"), 409, "username_taken"),
        (
            post(
                port,
                "/login/",
                r#"{"username": "alice", "password": "wrong-password"}"#,
                None,
            ),
            401,
            "invalid_credentials",
        ),
        (
            post(port, "/chat/", r#"{"message": "hi"}"#, None),
            401,
            "unauthorized",
        ),
        (
            post(port, "/chat/", r#"{"message": "hi"}"#, Some("forged.token")),
            401,
            "unauthorized",
        ),
        (
            post(port, "/register/", "{not json", None),
            400,
            "invalid_json",
        ),
        (
            post(
                port,
                "/register/",
                r#"{"username": 5, "password": "long-enough"}"#,
                None,
            ),
            400,
            "invalid_field",
        ),
        (
            post(
                port,
                "/register/",
                &format!("{{\"username\": \"{}\"}}", "x".repeat(70_000)),
                None,
            ),
            413,
            "payload_too_large",
        ),
        (
            send(port, "GET", "/balance/", &[], b""),
            401,
            "unauthorized",
        ),
        (
            send(port, "GET", "/no-such-path/", &[], b""),
            404,
            "not_found",
        ),
        // The page's own path serves it; a file it does not have is 404.
        (
            send(port, "GET", "/assets/no-such-file.js", &[], b""),
            404,
            "not_found",
        ),
        (
            send(port, "GET", "/chat/", &[], b""),
            405,
            "method_not_allowed",
        ),
        (
            send(port, "POST", "/balance/", &[JSON], b"{}"),
            405,
            "method_not_allowed",
        ),
        (
            send(port, "DELETE", "/register/", &[], b""),
            405,
            "method_not_allowed",
        ),
    ];
    for (response, status, code) in cases {
        assert_eq!(response.status, status, "{code}: {response:?}");
        assert_eq!(response.json()["error"], code);
    }
}

/// cargo lambda runs one invocation per function process at a time, as one
/// Lambda instance does; the counts must be exact however they interleave.
fn concurrent_chats(port: u16) {
    assert_eq!(register(port, "bob").status, 201);
    let token = Arc::new(login(port, "bob"));
    let threads: Vec<_> = (0..50)
        .map(|i| {
            let token = token.clone();
            std::thread::spawn(move || {
                post(
                    port,
                    "/chat/",
                    &json!({"message": format!("burst {i}")}).to_string(),
                    Some(&token),
                )
                .status
            })
        })
        .collect();
    let mut statuses: Vec<u16> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    statuses.sort();
    let ok = statuses.iter().filter(|s| **s == 200).count();
    let refused = statuses.iter().filter(|s| **s == 402).count();
    assert_eq!((ok, refused), (40, 10), "{statuses:?}");
    assert_eq!(balance(port, &token).json(), json!({"tokens": 0}));
}

fn login_status(port: u16, username: &str, password: &str) -> (u16, String) {
    let body = json!({"username": username, "password": password}).to_string();
    let response = post(port, "/login/", &body, None);
    let code = response.json()["error"].as_str().unwrap_or("").to_owned();
    (response.status, code)
}

/// Wrong passwords over HTTP: a name that exists and one that does not
/// answered alike step by step, and guesses sent at once on a slowed name
/// (spread over the instances) getting one password check between them,
/// for both.
fn wrong_passwords(api: &LocalApi) {
    let port = api.port;
    assert_eq!(register(port, "carol").status, 201);
    for step in 1..=7 {
        let real = login_status(port, "carol", "wrong-password-1");
        let unknown = login_status(port, "nobody", "wrong-password-1");
        assert_eq!(real, unknown, "step {step}");
        if step <= 5 {
            assert_eq!(real, (401, "invalid_credentials".to_owned()), "step {step}");
        }
    }
    // Ten failures, the last 40 s ago: one slot is free, and its taking
    // makes the next wait a minute.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let tables = api.tables();
    let long_ago = Timestamp::from_unix_millis(Timestamp::now().unix_millis() - 40_000).unwrap();
    assert_eq!(register(port, "dave").status, 201);
    for name in ["dave", "nobody-else"] {
        runtime.block_on(past_failures(&tables, name, 10, long_ago));
        let threads: Vec<_> = (0..12)
            .map(|_| std::thread::spawn(move || login_status(port, name, "wrong-password-1")))
            .collect();
        let mut statuses: Vec<u16> = threads
            .into_iter()
            .map(|thread| thread.join().unwrap().0)
            .collect();
        statuses.sort();
        let mut expected = vec![401];
        expected.extend([429; 11]);
        assert_eq!(statuses, expected, "{name}");
    }
}

/// 1000+ generated malformed requests: invalid UTF-8, deep nesting, huge
/// bodies and numbers, duplicate keys, wrong content types, control
/// characters, forged, truncated and padded tokens, oversized headers,
/// unknown paths. Each gets a JSON 4xx; no table changes.
/// Bytes that are not UTF-8, in a JSON body or a header value, as HTTP lets
/// any client send them. cargo lambda's emulator alone answered each of
/// these with its own `500 text/plain` before any function ran;
/// API Gateway hands them to the function (a binary body, a Latin-1 header
/// value), and so does `make run` now: each gets our JSON 4xx, or is
/// ignored where the header is none of ours, and nothing is charged.
fn non_utf8_bytes(api: &LocalApi, alice: &str) {
    let port = api.port;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let tables = api.tables();
    let before = runtime.block_on(item_counts(&tables));
    let expect = |response: HttpResponse, status: u16, code: &str, what: &str| {
        assert_eq!(response.status, status, "{what}: {response:?}");
        assert_eq!(response.json()["error"], code, "{what}");
    };

    let credentials: &[u8] = b"{\"username\": \"eve\xff\xfe\", \"password\": \"long-enough-\xc3\"}";
    let message: &[u8] = b"{\"message\": \"caf\xe9\"}";
    let token = format!("Token {alice}");
    for content_type in [
        Some(&b"application/json"[..]),
        Some(b"application/json; charset=utf-8"),
        Some(b"text/plain"),
        None,
    ] {
        let what = format!(
            "Content-Type {:?}",
            content_type.map(String::from_utf8_lossy)
        );
        let mut headers: Vec<(&str, &[u8])> = content_type
            .map(|value| ("Content-Type", value))
            .into_iter()
            .collect();
        for path in ["/register/", "/login/"] {
            let response = send_raw(port, "POST", path, &headers, credentials);
            expect(response, 400, "invalid_json", &format!("{path} {what}"));
        }
        headers.push(("Authorization", token.as_bytes()));
        let response = send_raw(port, "POST", "/chat/", &headers, message);
        expect(response, 400, "invalid_json", &format!("/chat/ {what}"));
    }

    // Latin-1 bytes (é as 0xE9) and bytes no encoding would make: the token
    // reads as text that is no token, so 401.
    let forged = [
        b"Token \xff\xfe\xfd".to_vec(),
        [token.as_bytes(), b"\xe9"].concat(),
        [
            b"Token caf\xe9.".as_slice(),
            alice.split_once('.').unwrap().1.as_bytes(),
        ]
        .concat(),
    ];
    for authorization in &forged {
        for (method, path) in [
            ("GET", "/balance/"),
            ("GET", "/chats/"),
            ("POST", "/logout/"),
        ] {
            let response = send_raw(port, method, path, &[("Authorization", authorization)], b"");
            expect(
                response,
                401,
                "unauthorized",
                &format!("{method} {path} {authorization:?}"),
            );
        }
    }
    // The key is ours to read: a live token with a Latin-1 key is a 400
    // naming the header, before any charge.
    let json: &[u8] = b"application/json";
    let response = send_raw(
        port,
        "POST",
        "/chat/",
        &[
            ("Content-Type", json),
            ("Authorization", token.as_bytes()),
            ("Idempotency-Key", b"k\xe9y"),
        ],
        br#"{"message": "hello"}"#,
    );
    assert_eq!(response.json()["field"], "Idempotency-Key", "{response:?}");
    expect(response, 400, "invalid_field", "Idempotency-Key");
    // A header that is none of ours is passed on and ignored, as in AWS.
    let response = send_raw(
        port,
        "GET",
        "/balance/",
        &[
            ("Authorization", token.as_bytes()),
            ("X-Note", b"caf\xe9 \xff"),
        ],
        b"",
    );
    assert_eq!(response.status, 200, "{response:?}");

    assert_eq!(
        runtime.block_on(item_counts(&tables)),
        before,
        "no table changed"
    );
}

fn hostile_requests(api: &LocalApi, alice: &str) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let tables = api.tables();
    // A login refused for its name or password is counted, as any is.
    let before = runtime.block_on(item_counts_beside_login_failures(&tables));
    let material = Material {
        token: alice.to_owned(),
        other_user: "bob".into(),
    };
    let requests = generate(1008, 0x5eed, &material);
    for (index, request) in requests.iter().enumerate() {
        let headers: Vec<(&str, &str)> = request
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let response = send(
            api.port,
            request.method,
            &request.path,
            &headers,
            &request.body,
        );
        let context = format!(
            "request {index} ({}): {} {}",
            request.what, request.method, request.path
        );
        assert!(
            (400..500).contains(&response.status),
            "{context}: {response:?}"
        );
        let body = response.json();
        assert!(
            body["error"].is_string() && body["message"].is_string(),
            "{context}: {body}"
        );
    }
    assert_eq!(
        runtime.block_on(item_counts_beside_login_failures(&tables)),
        before,
        "no table changed but the failed logins counted"
    );
    assert_eq!(balance(api.port, alice).json(), json!({"tokens": 3900}));
}

fn logout(port: u16, token: &str) {
    let auth = format!("Token {token}");
    let response = send(port, "POST", "/logout/", &[("Authorization", &auth)], b"");
    assert_eq!(response.status, 204, "{response:?}");
    assert_eq!(
        balance(port, token).status,
        401,
        "the token ended with its session"
    );
    let again = send(port, "POST", "/logout/", &[("Authorization", &auth)], b"");
    assert_eq!(
        (again.status, again.json()["error"].as_str()),
        (401, Some("unauthorized"))
    );
}
