//! The API over HTTP as `make run` serves it (release builds, one process
//! per concurrent request as Lambda scales out): latency per endpoint one
//! request at a time, then chat and balance throughput at 16 clients, each
//! a user of its own.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use api_tests::http::{send, HttpResponse};
use api_tests::local_api::LocalApi;
use api_tests::{credentials, PASSWORD};
use serde_json::{json, Value};

use crate::stats::{round, Summary};

pub const CLIENTS: usize = 16;
const CHATS_PER_CLIENT: usize = 50;
const BALANCES_PER_CLIENT: usize = 100;

pub fn run(iterations: usize) -> Value {
    let clients = CLIENTS.to_string();
    // A grant large enough that no user of the run runs out of tokens.
    // BENCH_RELEASE=0: the debug build, for the smoke run in `make test`
    // (its figures mean nothing; that every request is answered does).
    let release = std::env::var("BENCH_RELEASE").unwrap_or_else(|_| "1".into());
    let api = LocalApi::start_with(&[
        ("RELEASE", release.as_str()),
        ("CONCURRENCY", &clients),
        ("INITIAL_TOKENS", "1000000000"),
        // One user chats faster than the per-user rate allows.
        ("CHATS_PER_MINUTE", "0"),
    ]);
    let port = api.port;
    let slow = (iterations / 4).max(20);

    println!("\n## Over HTTP against `RELEASE=1 make run` (cargo lambda watch, DynamoDB Local)");
    println!(
        "{:<24} {:>6} {:>10} {:>10}",
        "request", "n", "p50 ms", "p99 ms"
    );
    let mut latency = Vec::new();
    let mut show = |name: &str, samples: Vec<Duration>| {
        let summary = Summary::of(&samples);
        println!(
            "{name:<24} {:>6} {:>10.3} {:>10.3}",
            summary.n, summary.p50, summary.p99
        );
        latency.push(json!({ "request": name, "ms": summary.json() }));
    };

    let mut names = (0..).map(|i| format!("user{i}"));
    let register = |name: &str| post(port, "/register/", None, &credentials(name, PASSWORD), 201);
    show(
        "POST /register/",
        timed(slow, || {
            let name = names.next().unwrap();
            move || register(&name)
        }),
    );
    // Each login is a user's first (registered untimed): a user's sessions
    // are bounded, and a login past the bound costs one more write.
    show(
        "POST /login/",
        timed(slow, || {
            let name = names.next().unwrap();
            register(&name);
            move || login(port, &name)
        }),
    );
    register("alice");
    let token = login(port, "alice");
    let chat_body = json!({"message": "How fast is this?"}).to_string();
    show(
        "POST /chat/",
        timed(iterations, || {
            || post(port, "/chat/", Some(&token), &chat_body, 200)
        }),
    );
    show(
        "GET /balance/",
        timed(iterations, || {
            || request(port, "GET", "/balance/", Some(&token), "", 200)
        }),
    );
    show(
        "POST /logout/",
        timed(slow, || {
            let session = login(port, "alice");
            move || request(port, "POST", "/logout/", Some(&session), "", 204)
        }),
    );

    println!("\nthroughput, {CLIENTS} clients, each its own user:");
    println!(
        "{:<16} {:>9} {:>10} {:>10} {:>10}",
        "request", "requests", "per second", "p50 ms", "p99 ms"
    );
    let tokens: Vec<String> = (0..CLIENTS)
        .map(|i| {
            let name = format!("client{i}");
            register(&name);
            login(port, &name)
        })
        .collect();
    let mut throughput = Vec::new();
    for (name, per_client) in [
        ("POST /chat/", CHATS_PER_CLIENT),
        ("GET /balance/", BALANCES_PER_CLIENT),
    ] {
        let call = |token: &str| match name {
            "POST /chat/" => post(port, "/chat/", Some(token), &chat_body, 200),
            _ => request(port, "GET", "/balance/", Some(token), "", 200),
        };
        // One round at full concurrency first: watch starts an instance per
        // concurrent request on first use, and those cold starts are not
        // what this measures.
        burst(&tokens, 1, &call);
        let started = Instant::now();
        let samples = burst(&tokens, per_client, &call);
        let elapsed = started.elapsed();
        let per_second = samples.len() as f64 / elapsed.as_secs_f64();
        let summary = Summary::of(&samples);
        println!(
            "{name:<16} {:>9} {:>10.0} {:>10.3} {:>10.3}",
            samples.len(),
            per_second,
            summary.p50,
            summary.p99
        );
        throughput.push(json!({
            "request": name,
            "clients": CLIENTS,
            "requests": samples.len(),
            "per_second": round(per_second),
            "ms": summary.json(),
        }));
    }
    drop(api);
    let debug_register = debug_register(slow);
    json!({ "latency": latency, "throughput": throughput, "debug_register": debug_register })
}

/// `POST /register/` through plain `make run`, which serves debug builds:
/// what a developer waits for. argon2id's crates are optimised in debug
/// builds too (the workspace `Cargo.toml`), or this would be several times
/// the release figure.
fn debug_register(count: usize) -> Value {
    let api = LocalApi::start();
    let port = api.port;
    let mut names = (0..).map(|i| format!("dev{i}"));
    let samples = timed(count, || {
        let name = names.next().unwrap();
        move || post(port, "/register/", None, &credentials(&name, PASSWORD), 201)
    });
    let summary = Summary::of(&samples);
    println!("\n`POST /register/` through `make run` (debug builds):");
    println!(
        "{:>6} requests, mean {:.3} ms, p50 {:.3} ms, p99 {:.3} ms",
        summary.n,
        samples.iter().map(Duration::as_secs_f64).sum::<f64>() * 1000.0 / summary.n as f64,
        summary.p50,
        summary.p99
    );
    summary.json()
}

/// Times `count` requests made by closures from `setup` (set-up untimed).
fn timed<T, F: FnOnce() -> T>(count: usize, mut setup: impl FnMut() -> F) -> Vec<Duration> {
    for _ in 0..3 {
        setup()();
    }
    (0..count)
        .map(|_| {
            let call = setup();
            let started = Instant::now();
            call();
            started.elapsed()
        })
        .collect()
}

/// `per_client` calls from each of the clients at once; every call's latency.
fn burst<T>(
    tokens: &[String],
    per_client: usize,
    call: &(impl Fn(&str) -> T + Sync),
) -> Vec<Duration> {
    let barrier = Arc::new(Barrier::new(tokens.len()));
    std::thread::scope(|scope| {
        let workers: Vec<_> = tokens
            .iter()
            .map(|token| {
                let barrier = barrier.clone();
                scope.spawn(move || {
                    barrier.wait();
                    (0..per_client)
                        .map(|_| {
                            let started = Instant::now();
                            call(token);
                            started.elapsed()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    })
}

fn login(port: u16, username: &str) -> String {
    let response = post(port, "/login/", None, &credentials(username, PASSWORD), 200);
    response.json()["token"].as_str().unwrap().to_owned()
}

fn post(port: u16, path: &str, token: Option<&str>, body: &str, expected: u16) -> HttpResponse {
    request(port, "POST", path, token, body, expected)
}

fn request(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
    expected: u16,
) -> HttpResponse {
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(token) = token {
        headers.push(("Authorization", token));
    }
    let response = send(port, method, path, &headers, body.as_bytes());
    assert_eq!(
        response.status,
        expected,
        "{method} {path}: {}",
        String::from_utf8_lossy(&response.body)
    );
    response
}
