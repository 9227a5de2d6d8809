#!/usr/bin/env bash
# `make bench`: builds what the benchmarks measure, then runs them.
#
#   1. release arm64 bootstraps (what Lambda runs), zipped as `sam build`
#      zips them: their sizes;
#   2. release binaries for this machine: cold starts, and `make run` in
#      release for the HTTP figures;
#   3. `cargo bench`: the tables on stdout, all of it as JSON in
#      target/bench/perf.json, then the login timing check (the same
#      answers, calls and time for a name that exists and one that does
#      not).
#
# Arguments name parts to run (in-process, v1-stream, http, cold-start, sizes of the
# perf bench, and login-timing); none runs all. The first run builds for a
# while.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
say() { echo "[bench] $*" >&2; }
# shellcheck source=scripts/lib.sh
. "$root/scripts/lib.sh"
target="${CARGO_TARGET_DIR:-$root/target}"
mapfile -t functions < <(function_crates)

bash scripts/tools.sh dynamodb-local cargo-lambda

say "building release arm64 bootstraps (cargo lambda build --release --arm64)"
cargo lambda build --quiet --release --arm64
say "zipping each as sam build does (deflate) into $target/bench/zips"
mkdir -p "$target/bench/zips"
python3 - "$target" "${functions[@]}" <<'PY'
import os, sys, zipfile
target, functions = sys.argv[1], sys.argv[2:]
for function in functions:
    bootstrap = os.path.join(target, "lambda", function, "bootstrap")
    with zipfile.ZipFile(os.path.join(target, "bench", "zips", function + ".zip"), "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(bootstrap, "bootstrap")
PY

# The benchmarks first: their build shares libraries with the release
# binaries, so building those second leaves them fresh for `cargo lambda
# watch`, which would otherwise relink every function on its first request.
say "building the benchmarks (release, LTO)"
cargo bench --quiet --no-run -p api-tests --bench perf --bench login_timing
say "building release binaries for this machine (cold starts, RELEASE=1 make run)"
RELEASE=1 bash scripts/run-local.sh build
# make run serves the HTTP functions and the sweeper; the cold starts start
# every function, the stream-triggered alerts too.
packages=()
for function in "${functions[@]}"; do packages+=(-p "$function"); done
cargo build --quiet --release "${packages[@]}"
say "building debug binaries (register through plain make run)"
bash scripts/run-local.sh build

say "running the benchmarks (DynamoDB Local is started for them)"
perf_parts=() login_timing=""
for part in "$@"; do
  if [ "$part" = login-timing ]; then login_timing=1; else perf_parts+=("$part"); fi
done
if [ $# -eq 0 ] || [ ${#perf_parts[@]} -gt 0 ]; then
  cargo bench --quiet -p api-tests --bench perf -- "${perf_parts[@]}"
fi
if [ $# -eq 0 ] || [ -n "$login_timing" ]; then
  cargo bench --quiet -p api-tests --bench login_timing
fi
