//! Login refusals for a name that exists and for one that does not: the
//! same answers, the same DynamoDB calls and the same time.
//!
//! First the answers step by step: wrong passwords for a real and an
//! unknown name side by side, through the free failures and into the
//! slow-down, each step's status, code and calls the same for both (the
//! run stops with a message if not). Then the times: in each round a name
//! is refused for the first time (a fresh real name, a fresh unknown one),
//! so both take a slot and run one argon2id verification (the unknown
//! one's against a dummy hash with the same parameters); their times must
//! match within noise. Then the slowed-down refusal, which checks no
//! password, for both.
//!
//! Run with `make bench` (DynamoDB Local is started as for the tests), or
//! `make bench PARTS=login-timing` for this part alone.

use std::time::{Duration, Instant};

use api_tests::calls::counted_app;
use api_tests::*;
use chat_core::App;

const ROUNDS: usize = 40;
const WARM_UP: usize = 5;

async fn timed_login(app: &App, username: &str, status: u16) -> Duration {
    let request = with_body(event("login"), &credentials(username, "wrong-password"));
    let started = Instant::now();
    let response = login::handle(app, request).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(response.status(), status, "{username}");
    elapsed
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let (app, calls) = counted_app().await;

        // Step by step: the same status, code and calls at every step.
        assert_eq!(register(&app, "alice").await.status(), 201);
        calls.take();
        println!("login refusals step by step (a real name beside an unknown one):");
        println!("{:<6} {:<58} nobody (does not)", "step", "alice (exists)");
        for step in 1..=8 {
            let mut seen = Vec::new();
            for name in ["alice", "nobody"] {
                let response = login_with(&app, name, "wrong-password").await;
                let code = json_of(&response)["error"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned();
                seen.push((response.status().as_u16(), code, calls.take().join("+")));
            }
            let shown: Vec<String> = seen
                .iter()
                .map(|(status, code, sent)| format!("{status} {code} ({sent})"))
                .collect();
            println!("{step:<6} {:<58} {}", shown[0], shown[1]);
            assert_eq!(seen[0], seen[1], "step {step} told the two names apart");
        }

        // Times of a name's first refusal, each name fresh so none waits.
        for i in 0..ROUNDS + WARM_UP {
            assert_eq!(register(&app, &format!("user{i}")).await.status(), 201);
        }
        let (mut unknown, mut wrong) = (Vec::new(), Vec::new());
        // Interleaved, so drift in the machine's load hits both alike; the
        // first rounds pay for connections and page faults.
        for i in 0..ROUNDS + WARM_UP {
            let absent = timed_login(&app, &format!("stranger{i}"), 401).await;
            let present = timed_login(&app, &format!("user{i}"), 401).await;
            if i >= WARM_UP {
                unknown.push(absent);
                wrong.push(present);
            }
        }
        // And slowed down: refused before any password check.
        let (mut unknown_slowed, mut wrong_slowed) = (Vec::new(), Vec::new());
        assert_eq!(register(&app, "bob").await.status(), 201);
        slow_down(&app, "bob").await;
        slow_down(&app, "stranger").await;
        for _ in 0..ROUNDS {
            unknown_slowed.push(timed_login(&app, "stranger", 429).await);
            wrong_slowed.push(timed_login(&app, "bob", 429).await);
        }
        println!();
        println!("login refusal timing, {ROUNDS} rounds each (argon2id m=19456 KiB, t=2, p=1):");
        println!(
            "{:<30} {:>10} {:>10} {:>10}",
            "case", "p10 ms", "p50 ms", "p90 ms"
        );
        let mut medians = Vec::new();
        for (name, times) in [
            ("unknown user", &mut unknown),
            ("wrong password", &mut wrong),
            ("unknown user, slowed", &mut unknown_slowed),
            ("wrong password, slowed", &mut wrong_slowed),
        ] {
            times.sort();
            println!(
                "{name:<30} {:>10.1} {:>10.1} {:>10.1}",
                millis(percentile(times, 0.1)),
                millis(percentile(times, 0.5)),
                millis(percentile(times, 0.9)),
            );
            medians.push(percentile(times, 0.5).as_secs_f64());
        }
        println!(
            "median ratio unknown/wrong: {:.3} checked, {:.3} slowed",
            medians[0] / medians[1],
            medians[2] / medians[3]
        );
    });
}
