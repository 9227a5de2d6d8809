#!/usr/bin/env bash
# `make test`: every test, on a fresh machine too.
#
# Installs what is missing (cargo-lambda, the DynamoDB Local jar,
# Schemathesis, the openai SDK with pytest, and for the template checks
# aws-sam-cli, cfn-lint and checkov), starts one DynamoDB Local for the run (each
# test makes tables of its own in it), builds the functions so the
# end-to-end test's `make run` starts at once, runs the whole workspace's
# tests and a smoke run of the benchmarks, then Schemathesis against a `make run` of its own
# (scripts/schemathesis.sh), then the official openai Python SDK's tests of
# the /v1 routes against that same `make run` (scripts/openai-sdk.sh), then
# the web page in headless chromium against it too (scripts/web-test.sh), then
# lints the SAM template and scans it with checkov (`make validate`).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
say() { echo "[test] $*" >&2; }

bash scripts/tools.sh cargo-lambda dynamodb-local schemathesis openai chromium web

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
say "starting DynamoDB Local for the tests on 127.0.0.1:$port"
bash scripts/dynamodb-local.sh start-for $$ "$port"
ddb_pid=$(cat "${TMPDIR:-/tmp}/dynamodb-local-$port.pid")
export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
api_pid=""
# Stops what this script started, by process id: the API's whole process
# group (setsid made it its leader), then DynamoDB Local.
cleanup() {
  if [ -n "$api_pid" ]; then
    kill -TERM -- "-$api_pid" 2>/dev/null || true
    while kill -0 "$api_pid" 2>/dev/null; do sleep 0.2; done
  fi
  kill "$ddb_pid" 2>/dev/null || true
}
trap cleanup EXIT

bash scripts/run-local.sh build

say "running the tests"
cargo test --workspace

# The benchmarks, briefly, in the test profile (make bench builds them with
# LTO, minutes more for the same code): a bench that no longer runs, or that
# times a refusal, fails here. Sizes need the arm64 builds of make bench.
say "smoke run of the benchmarks (figures meaningless here; make bench has them)"
target="${CARGO_TARGET_DIR:-$root/target}"
# The cold starts start every function; the build above leaves out those
# make run does not serve (the stream-triggered alerts).
# shellcheck source=scripts/lib.sh
. "$root/scripts/lib.sh"
unserved=()
for function in $(comm -23 <(function_crates | sort) <(run_functions)); do
  unserved+=(-p "$function")
done
if [ ${#unserved[@]} -gt 0 ]; then cargo build --quiet "${unserved[@]}"; fi
BENCH_ITERATIONS=5 BENCH_STARTS=2 BENCH_RELEASE=0 BENCH_BIN_DIR="$target/debug" \
  BENCH_JSON="$target/bench/smoke.json" \
  cargo test -p api-tests --bench perf -- in-process v1-stream http cold-start
cargo test -p api-tests --bench login_timing

# Every account any test made, in every set of tables: balance = ledger.
say "auditing every account the tests left behind"
cargo run --quiet -p devtools --bin audit-tables

# Schemathesis drives a `make run` of its own, on the DynamoDB Local above
# (its tables, users, sessions and chats, are none a test uses), with a data
# folder of its own, so a developer's `make run` is left alone.
api_port=$(free_port)
api_dir=$(mktemp -d)
say "starting make run for Schemathesis on 127.0.0.1:$api_port (log: $api_dir/run.log)"
API_PORT="$api_port" DATA_DIR="$api_dir" RUN_OWNER_PID=$$ \
  setsid bash scripts/run-local.sh >"$api_dir/run.log" 2>&1 &
api_pid=$!
until grep -q '^\[run\] ready:' "$api_dir/run.log"; do
  if ! kill -0 "$api_pid" 2>/dev/null; then
    cat "$api_dir/run.log" >&2
    say "make run for Schemathesis exited before it was ready"
    exit 1
  fi
  sleep 0.5
done
started=$SECONDS
if bash scripts/schemathesis.sh "http://127.0.0.1:$api_port"; then
  say "Schemathesis: no failures, in $((SECONDS - started)) s"
else
  say "Schemathesis failed after $((SECONDS - started)) s; the API's log is $api_dir/run.log"
  exit 1
fi
# The same `make run`: it uses the DynamoDB Local above (AWS_ENDPOINT_URL),
# on port $port, with the tables users, credentials and chats, which is
# where the tests' `chat-ops audit` looks.
started=$SECONDS
if ! bash scripts/openai-sdk.sh "http://127.0.0.1:$api_port" "$port"; then
  say "the openai SDK tests failed after $((SECONDS - started)) s; the API's log is $api_dir/run.log"
  exit 1
fi
# The page it serves at /, in a real browser, as a person uses it.
started=$SECONDS
if ! bash scripts/web-test.sh "http://127.0.0.1:$api_port"; then
  say "the web page's browser tests failed after $((SECONDS - started)) s; the API's log is $api_dir/run.log"
  exit 1
fi
kill -TERM -- "-$api_pid"
while kill -0 "$api_pid" 2>/dev/null; do sleep 0.2; done
api_pid=""
rm -rf "$api_dir"

say "linting template.yaml (cfn-lint, sam validate --lint, checkov)"
make --no-print-directory validate
