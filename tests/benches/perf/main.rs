//! `make bench`: how fast the API is, as figures (never pass/fail).
//!
//! Prints one table per part and writes them as JSON (BENCH_JSON, default
//! `target/bench/perf.json`; a run of some parts replaces only those):
//! - in process: each handler against DynamoDB Local beside its bare SDK call;
//! - `/v1` streaming in process: each piece from the model stand-in to the
//!   client, and streams a second;
//! - over HTTP: `make run` in release, latency per endpoint, and chat and
//!   balance throughput at 16 clients;
//! - cold start: process start to first answer, per function;
//! - sizes: each release arm64 bootstrap and its zip.
//!
//! `scripts/bench.sh` builds what the last two read. Name parts to run only
//! those: `cargo bench -p api-tests --bench perf -- in-process cold-start`.
//! BENCH_ITERATIONS (200) and BENCH_STARTS (20) set the sample sizes.
//! `make test` runs a smoke of it in the test profile (scripts/test.sh):
//! a few samples of each part but sizes, on the debug binaries
//! (BENCH_RELEASE=0, BENCH_BIN_DIR), so a bench that no longer runs, or
//! times a refusal, fails the tests.

mod cold_start;
mod in_process;
mod over_http;
mod sizes;
mod stats;
mod v1_stream;

use std::path::PathBuf;

use devtools::dynamodb_local::repo_root;
use serde_json::{json, Map, Value};

/// Every function crate, as `scripts/bench.sh` zips them: the folders
/// under `functions/`, sorted.
pub fn function_crates() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(repo_root().join("functions"))
        .expect("reading functions/")
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.path().is_dir())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

const PARTS: [&str; 5] = ["in-process", "v1-stream", "http", "cold-start", "sizes"];

fn main() {
    // `cargo bench` passes `--bench`; anything else names parts to run.
    let chosen: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    for part in &chosen {
        assert!(
            PARTS.contains(&part.as_str()),
            "unknown part {part:?}; the parts: {PARTS:?}"
        );
    }
    let wanted = |part: &str| chosen.is_empty() || chosen.iter().any(|c| c == part);
    let number = |name: &str, default: usize| {
        std::env::var(name).ok().map_or(default, |v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}={v}: not a number"))
        })
    };
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| repo_root().join("target"), PathBuf::from);
    let path = |name: &str, default: PathBuf| std::env::var_os(name).map_or(default, PathBuf::from);
    let iterations = number("BENCH_ITERATIONS", 200);
    let starts = number("BENCH_STARTS", 20);

    let out = path("BENCH_JSON", target.join("bench/perf.json"));
    // A run of some parts updates those in the last report, keeping the rest.
    let mut report: Map<String, Value> = match std::fs::read_to_string(&out) {
        Ok(text) if !chosen.is_empty() => serde_json::from_str(&text).unwrap_or_default(),
        _ => Map::new(),
    };
    report.insert("machine".into(), machine());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    if wanted("in-process") {
        report.insert(
            "in_process".into(),
            runtime.block_on(in_process::run(iterations)),
        );
    }
    if wanted("v1-stream") {
        report.insert(
            "v1_stream".into(),
            runtime.block_on(v1_stream::run(iterations)),
        );
    }
    if wanted("http") {
        report.insert("http".into(), over_http::run(iterations));
    }
    if wanted("cold-start") {
        let bin_dir = path("BENCH_BIN_DIR", target.join("release"));
        report.insert(
            "cold_start".into(),
            runtime.block_on(cold_start::run(&bin_dir, starts)),
        );
    }
    if wanted("sizes") {
        let lambda_dir = path("BENCH_LAMBDA_DIR", target.join("lambda"));
        let zip_dir = path("BENCH_ZIP_DIR", target.join("bench/zips"));
        report.insert("sizes".into(), sizes::run(lambda_dir, zip_dir));
    }

    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    std::fs::write(
        &out,
        serde_json::to_string_pretty(&Value::Object(report)).unwrap(),
    )
    .unwrap();
    println!("\nwritten: {}", out.display());
}

/// What the figures were measured on.
fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|line| {
            line.strip_prefix("model name")
                .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "# make bench on {cpu}, {cores} cores ({})",
        std::env::consts::ARCH
    );
    json!({ "cpu": cpu, "cores": cores, "arch": std::env::consts::ARCH })
}
