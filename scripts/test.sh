#!/usr/bin/env bash
# `make test`: every test, on a fresh machine too.
#
# Installs what is missing (cargo-lambda, the DynamoDB Local jar, and for the
# template checks aws-sam-cli and cfn-lint), starts one
# DynamoDB Local for the run (each test makes tables of its own in it), builds
# the functions so the end-to-end test's `make run` starts at once, then runs
# the whole workspace's tests, then lints the SAM template.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
say() { echo "[test] $*" >&2; }

bash scripts/tools.sh cargo-lambda dynamodb-local

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
say "starting DynamoDB Local for the tests on 127.0.0.1:$port"
bash scripts/dynamodb-local.sh start-for $$ "$port"
export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
cleanup() { pkill -f -- "-inMemory -port $port\$" 2>/dev/null || true; }
trap cleanup EXIT

bash scripts/run-local.sh build

say "running the tests"
cargo test --workspace

say "linting template.yaml (cfn-lint, sam validate --lint)"
make --no-print-directory validate
