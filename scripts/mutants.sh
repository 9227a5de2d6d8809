#!/usr/bin/env bash
# `make mutants`: cargo-mutants over the money code (.cargo/mutants.toml
# names the files, the tests and the reviewed exclusions), against a
# DynamoDB Local of its own. Writes mutants.out/ as cargo-mutants does;
# mutants.out/missed.txt lists every mutant no test caught.
#
#   make mutants                                   # all of it: hours on 2 cores
#   make mutants ARGS="--file shared/src/pricing.rs"   # one file
#   make mutants ARGS="--list"                     # what would be tried
#
# Mutants are applied in place, one at a time, and each file is put back
# after its mutant: leave the tree alone while it runs. It is not part of
# `make test` (docs/testing.md#mutation-testing has the latest score).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
say() { echo "[mutants] $*" >&2; }

bash scripts/tools.sh cargo-mutants dynamodb-local
if ! git diff --quiet; then
  say "the tree has uncommitted changes; commit or stash them first (mutants are applied in place)"
  exit 1
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
bash scripts/dynamodb-local.sh start-for $$ "$port"
export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
say "cargo mutants --in-place $*"
# Exit status 2 means some mutant was missed: the run's finding, reported
# as the failure of this command.
cargo mutants --in-place "$@"
