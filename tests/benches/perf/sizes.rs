//! The release arm64 `bootstrap` of each function and the zip Lambda gets.
//!
//! `scripts/bench.sh` builds them (`cargo lambda build --release --arm64`)
//! and zips each as `sam build` does (Python's zipfile, deflate), into the
//! directories named by BENCH_LAMBDA_DIR and BENCH_ZIP_DIR.

use std::path::PathBuf;

use serde_json::{json, Value};

use crate::function_crates;

const LIMIT_BYTES: u64 = 3 * 1024 * 1024;

pub fn run(lambda_dir: PathBuf, zip_dir: PathBuf) -> Value {
    println!("\n## Release arm64 artifacts ({})", lambda_dir.display());
    println!(
        "{:<10} {:>14} {:>12} {:>8}",
        "function", "bootstrap MB", "zip MB", "< 3 MB"
    );
    let mut rows = Vec::new();
    for function in function_crates() {
        let size = |path: PathBuf| {
            std::fs::metadata(&path)
                .unwrap_or_else(|e| panic!("{}: {e} (make bench builds it first)", path.display()))
                .len()
        };
        let bootstrap = size(lambda_dir.join(&function).join("bootstrap"));
        let zip = size(zip_dir.join(format!("{function}.zip")));
        let mb = |bytes: u64| bytes as f64 / 1024.0 / 1024.0;
        println!(
            "{function:<10} {:>14.2} {:>12.2} {:>8}",
            mb(bootstrap),
            mb(zip),
            if zip < LIMIT_BYTES { "yes" } else { "NO" }
        );
        rows.push(json!({
            "function": function,
            "bootstrap_bytes": bootstrap,
            "zip_bytes": zip,
        }));
    }
    Value::Array(rows)
}
