//! Login timing: an unknown user against a wrong password for a real one.
//! Both run one argon2id verification (the unknown user's against a dummy
//! hash), so their times must match within noise; this prints both.
//!
//! Run with `make bench` (DynamoDB Local is started as for the tests).

use std::time::{Duration, Instant};

use api_tests::*;
use chat_core::App;
use devtools::dynamodb_local::fresh_app;

const ROUNDS: usize = 40;

async fn timed_login(app: &App, username: &str, password: &str) -> Duration {
    let request = with_body(event("login"), &credentials(username, password));
    let started = Instant::now();
    let response = login::handle(app, request).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(response.status(), 401);
    elapsed
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let app = fresh_app().await;
        assert_eq!(register(&app, "alice").await.status(), 201);
        // Warm-up: the first calls pay for connections and page faults.
        for _ in 0..5 {
            timed_login(&app, "alice", "wrong-password").await;
            timed_login(&app, "nobody", "wrong-password").await;
        }
        let (mut unknown, mut wrong) = (Vec::new(), Vec::new());
        // Interleaved, so drift in the machine's load hits both alike.
        for _ in 0..ROUNDS {
            unknown.push(timed_login(&app, "nobody", "wrong-password").await);
            wrong.push(timed_login(&app, "alice", "wrong-password").await);
        }
        unknown.sort();
        wrong.sort();
        println!("login refusal timing, {ROUNDS} rounds each (argon2id m=19456 KiB, t=2, p=1):");
        println!(
            "{:<22} {:>10} {:>10} {:>10}",
            "case", "p10 ms", "p50 ms", "p90 ms"
        );
        for (name, times) in [("unknown user", &unknown), ("wrong password", &wrong)] {
            println!(
                "{name:<22} {:>10.1} {:>10.1} {:>10.1}",
                percentile(times, 0.1).as_secs_f64() * 1e3,
                percentile(times, 0.5).as_secs_f64() * 1e3,
                percentile(times, 0.9).as_secs_f64() * 1e3,
            );
        }
        let ratio = percentile(&unknown, 0.5).as_secs_f64() / percentile(&wrong, 0.5).as_secs_f64();
        println!("median ratio unknown/wrong: {ratio:.3}");
    });
}
