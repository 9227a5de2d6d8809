#!/usr/bin/env bash
# `make mutants`: cargo-mutants over the money code, in two passes, each
# with the tests that must catch its mutants:
#
#   pure  pricing.rs, catalog.rs and credits.rs, against the shared crate's
#         unit tests (seconds a mutant);
#   flow  the billing module, holds, accounts, chats, the ledger, the rate
#         and key limits and the sweeper, against the money tests and a
#         DynamoDB Local of this run's own (minutes a mutant: hours in all).
#
# (cargo-mutants gives every package the same test arguments, and
# `--test metering` names no target of the shared crate: hence two passes,
# and the lists here rather than in a .cargo/mutants.toml, whose files
# cargo-mutants would add to any --file given.) Each pass writes
# cargo-mutants' usual output, mutants.out/<pass>/mutants.out/ (missed.txt
# lists every mutant no test caught).
#
#   make mutants                              # the pure pass
#   make mutants PASS=flow                    # the flow pass (see below: not yet)
#   make mutants PASS=flow FILES="shared/src/store/rate.rs"   # some files
#   make mutants ARGS="--list"                # what would be tried
#
# Mutants are applied in place, one at a time, and each file is put back
# after its mutant: leave the tree alone while it runs. It is not part of
# `make test` (docs/testing.md#mutation-testing has the latest score). Exits
# non-zero if a pass missed a mutant (cargo-mutants' 2) or could not run.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
say() { echo "[mutants] $*" >&2; }

# The flow pass does not run yet: cargo-mutants 27.1.0 tests only the
# mutated package (chat-core) whatever --test-package or --test-workspace
# say here, and the money tests are api-tests'. `PASS=flow` tries it.
passes="${PASS:-pure}"
pure_files=(shared/src/pricing.rs shared/src/catalog.rs shared/src/credits.rs)
flow_files=(shared/src/billing.rs shared/src/store/holds.rs shared/src/store/accounts.rs
  shared/src/store/chats.rs shared/src/store/ledger.rs shared/src/store/rate.rs
  shared/src/store/key_limits.rs shared/src/store/api_keys.rs 'functions/sweeper/src/*.rs')
# The money tests: what a wrong line in the flow would break.
flow_tests=(metering paid_failures catalog concurrency idempotency limits budgets usage
  completions_model model keys retries ops handlers)
# Reviewed exclusions, each with its reason:
# - the `cost > hold` test in Pricing::cost only chooses whether to log a
#   warning; the charge is `cost.min(hold)` either way (pricing's tests).
excluded=("replace > with (==|<|>=) in Pricing::cost")

bash scripts/tools.sh cargo-mutants dynamodb-local
if ! git diff --quiet; then
  say "the tree has uncommitted changes; commit or stash them first (mutants are applied in place)"
  exit 1
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
bash scripts/dynamodb-local.sh start-for $$ "$port"
export AWS_ENDPOINT_URL="http://127.0.0.1:$port"

status=0
for pass in $passes; do
  args=(--no-config --in-place --output "mutants.out/$pass" --minimum-test-timeout 300)
  for re in "${excluded[@]}"; do args+=(--exclude-re "$re"); done
  case "$pass" in
    pure)
      # shellcheck disable=SC2206
      files=(${FILES:-${pure_files[@]}})
      args+=(--test-package chat-core --cargo-test-arg=--lib)
      ;;
    flow)
      # shellcheck disable=SC2206
      files=(${FILES:-${flow_files[@]}})
      args+=(--test-package api-tests)
      for test in "${flow_tests[@]}"; do args+=("--cargo-test-arg=--test=$test"); done
      ;;
    *) say "PASS names pure or flow, not $pass"; exit 2 ;;
  esac
  for file in "${files[@]}"; do args+=(--file "$file"); done
  say "pass $pass: cargo mutants ${args[*]} $*"
  cargo mutants "${args[@]}" "$@" || status=$?
done
exit "$status"
