#!/usr/bin/env bash
# `make mutants`: cargo-mutants over the money code, in two passes, each
# with the tests that must catch its mutants:
#
#   pure  pricing.rs, catalog.rs and credits.rs, against the shared crate's
#         unit tests (seconds a mutant);
#   flow  the billing module, holds, accounts, chats, the ledger, the rate
#         and key limits and the sweeper, against the shared crate's unit
#         tests and then the money tests, with a DynamoDB Local of this
#         run's own (a minute or two a mutant: hours in all).
#
# (Two passes, so that the pure files, which the unit tests alone must
# catch, cost seconds a mutant and not minutes; the lists are here rather
# than in a .cargo/mutants.toml, whose files cargo-mutants would add to any
# --file given.) Each pass writes
# cargo-mutants' usual output, mutants.out/<pass>/mutants.out/ (missed.txt
# lists every mutant no test caught).
#
#   make mutants                              # the pure pass
#   make mutants PASS=flow                    # the flow pass (hours)
#   make mutants PASS=flow FILES="shared/src/store/rate.rs"   # some files
#   make mutants PASS=flow FILES=shared/src/store/rate.rs TESTS="limits"
#                                             # ... against some test targets
#   make mutants PASS=flow FILES=... TESTS=... TIMEOUT=120
#                                             # ... a mutant's tests stopped
#                                             # after 120 s, not 300
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

passes="${PASS:-pure}"
pure_files=(shared/src/pricing.rs shared/src/catalog.rs shared/src/credits.rs)
flow_files=(shared/src/billing.rs shared/src/billing/embeddings.rs shared/src/store/holds.rs
  shared/src/store/accounts.rs shared/src/store/chats.rs shared/src/store/ledger.rs
  shared/src/store/rate.rs shared/src/store/key_limits.rs shared/src/store/api_keys.rs
  'functions/sweeper/src/*.rs')
# The money tests: what a wrong line in the flow would break. `TESTS` names
# fewer (test targets of api-tests) for a quicker run over one file.
flow_tests=(metering paid_failures catalog concurrency idempotency limits budgets usage
  completions_model model keys retries ops handlers)
# Reviewed exclusions, each with its reason:
# - the `cost > hold` test in Pricing::cost only chooses whether to log a
#   warning; the charge is `cost.min(hold)` either way (pricing's tests).
# - `left > LEAST_ATTEMPT` in billing's in_time, as `>=`: the two differ
#   only when exactly 300 ms to the nanosecond are left (the `<` and `==`
#   mutants are caught: paid_failures' settle under a Lambda deadline).
# - the per-minute cap's guard in chats' refusal_of, as `true`: past the
#   balance's own guard it is reached only by an account whose balance
#   covers the cost, and the chat's condition refuses such an account only
#   over the cap (the key's limits and open calls are named before it), so
#   the arm after it is a fallback no reachable state takes.
excluded=("replace > with (==|<|>=) in Pricing::cost" "replace > with >= in in_time"
  "replace match guard over_cap\\(account, chat_cap, now\\) with true in refusal_of")

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
  # --workspace: the workspace's default members are the functions, and
  # without it cargo-mutants looks only there (no mutant of chat-core).
  args=(--no-config --in-place --workspace --output "mutants.out/$pass" --minimum-test-timeout 300)
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
      # shellcheck disable=SC2206
      tests=(${TESTS:-${flow_tests[@]}})
      targets=()
      for test in "${tests[@]}"; do targets+=("--test=$test"); done
      # cargo-mutants' own baseline cannot run here: 27.1.0 tests the
      # baseline with the mutated packages only (chat-core, sweeper), never
      # with --test-package, and --test=metering names no target of theirs.
      # Each mutant is tested with --test-package's. So the baseline is
      # ours: the same tests against the same DynamoDB Local, unmutated,
      # and they must pass; then cargo-mutants skips its own.
      # The money tests mostly wait (on DynamoDB Local, on the model
      # stand-in's delays and deadlines): 8 at a time on 2 cores take
      # about 80 s for the whole set where one a core takes 170.
      export RUST_TEST_THREADS="${RUST_TEST_THREADS:-8}"
      # The shared crate's unit tests run first (--lib, seconds): a mutant
      # they catch needs no money test, and one only they can see (a bound
      # worked out in a pure function, say) is caught all the same.
      say "pass flow: baseline: cargo test -p chat-core -p api-tests --lib ${targets[*]}"
      if ! cargo test -p chat-core -p api-tests --lib "${targets[@]}"; then
        say "pass flow: the baseline failed: the tests must pass unmutated first"
        status=1
        continue
      fi
      # Without a baseline no timeout is derived from one, so both are
      # given (cargo-mutants' fallback is 300 s for the tests and none for
      # the build). A mutant of the shared crate rebuilds every function and
      # the test binaries it names: incrementally, 10 to 60 s on 2 cores,
      # and a few minutes should the incremental cache be cold; 600 s
      # leaves room for a busy machine. The whole set of money tests takes
      # about 80 s unmutated (170 s one test a core); past 300 s it is a
      # mutant that hangs (a retry loop that never ends), not a slow test.
      # A few test targets (TESTS) take less: TIMEOUT then says so.
      # The test targets go to every cargo call (--cargo-arg), not only to
      # the tests': the build then links only those binaries, not all of
      # api-tests'.
      args+=(--test-package chat-core,api-tests --baseline=skip --build-timeout 600 --timeout "${TIMEOUT:-300}")
      for target in --lib "${targets[@]}"; do args+=("--cargo-arg=$target"); done
      ;;
    *) say "PASS names pure or flow, not $pass"; exit 2 ;;
  esac
  for file in "${files[@]}"; do args+=(--file "$file"); done
  # cargo-mutants makes mutants.out/ inside --output, not --output itself.
  mkdir -p "mutants.out/$pass"
  say "pass $pass: cargo mutants ${args[*]} $*"
  cargo mutants "${args[@]}" "$@" || status=$?
done
exit "$status"
