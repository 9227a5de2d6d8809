#!/usr/bin/env bash
# `make run`: the whole API on http://127.0.0.1:3000, as on AWS but local.
#
# Starts DynamoDB Local (unless AWS_ENDPOINT_URL names a DynamoDB to use),
# creates the tables if missing, builds the functions, and serves them as
# real Lambda processes through `cargo lambda watch` at the contract's paths,
# behind local-gateway (devtools/), which shows the functions what API
# Gateway would where the emulator cannot.
# Alerts (functions/alerts in AWS) print on stdout, one JSON line each, read
# from the users table's stream by devtools' alerts-local.
# Ctrl-C stops everything it started. `run-local.sh build` only builds.
#
# Environment:
#   API_PORT=3000            where the API listens (127.0.0.1 only)
#   DYNAMODB_PORT=8000       where the DynamoDB Local it starts listens
#   DATA_DIR=.local-data     where DynamoDB Local keeps its data between runs
#   IN_MEMORY=1              keep no data: every run starts empty
#   AWS_ENDPOINT_URL=...     use this DynamoDB instead of starting one
#   RUN_OWNER_PID=...        stop when this process is gone (for tests)
#   RELEASE=1                serve release builds (what `make bench` measures)
#   CONCURRENCY=1            instances per function, as Lambda scales out
#   CATALOG_FILE=...         the catalog of models to serve (docs/catalog.md)
#   SWEEP_SECONDS=60         how often the sweeper runs, as its schedule does in
#                            AWS (0: never)
#   LOGIN_CHECKS_PER_IP=0, REGISTRATIONS_PER_IP=0
#                            per-IP limits, off: every local client is 127.0.0.1
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
api_port="${API_PORT:-3000}"
ddb_port="${DYNAMODB_PORT:-8000}"
data_dir="${DATA_DIR:-$root/.local-data}"
say() { echo "[run] $*" >&2; }
# shellcheck source=scripts/lib.sh
. "$root/scripts/lib.sh"

# The exact build `cargo lambda watch` runs, so its first request starts at
# once (a different package set would unify features differently and rebuild).
profile=()
[ "${RELEASE:-}" = 1 ] && profile=(--release)
build() {
  say "building the functions${profile[*]:+ (release)} and the table tool (the first build takes a few minutes)"
  local packages=()
  [ -n "$(served_functions)" ] || { say "no functions found in the router of Cargo.toml"; exit 1; }
  for function in $(run_functions); do packages+=(-p "$function"); done
  cargo build --quiet "${profile[@]}" "${packages[@]}"
  cargo build --quiet -p devtools --bin create-tables --bin alerts-local
  # Its own cargo run: built with the functions, it would change their
  # feature set and so rebuild them when watch builds them alone.
  cargo build --quiet "${profile[@]}" -p devtools --bin local-gateway
}
if [ "${1:-}" = build ]; then build; exit 0; fi

# One instance per data folder and port: a second `make run` says so.
mkdir -p "$data_dir"
exec 9>"$data_dir/run.lock"
if ! flock -n 9; then
  say "make run is already running for $data_dir (API on http://127.0.0.1:$api_port?); stop it with Ctrl-C first"
  exit 1
fi
if port_open "$api_port"; then
  say "port $api_port is already in use; set API_PORT to another port"
  exit 1
fi

pids=()
stopping=""
stop_all() {
  [ -z "$stopping" ] || return 0
  stopping=1
  trap '' INT TERM
  [ -z "${watchdog:-}" ] || kill "$watchdog" 2>/dev/null || true
  if [ "${#pids[@]}" -gt 0 ]; then
    say "stopping"
    for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true; done
    # A signal can cut a `wait` short, so wait until each one is gone.
    for pid in "${pids[@]}"; do
      while kill -0 "$pid" 2>/dev/null; do wait "$pid" 2>/dev/null || true; done
    done
  fi
  rm -f "${ready_file:-}"
}
# make forwards its own SIGTERM, so a second signal can land right behind
# the first: a handler that finds the stopping under way does nothing, so
# nothing can end this script halfway through stopping what it started.
trap '[ -n "$stopping" ] || { stop_all; exit 130; }' INT
trap '[ -n "$stopping" ] || { stop_all; exit 143; }' TERM
trap stop_all EXIT

# A test that starts this in a process group of its own would leave it all
# running if the test itself were killed: follow the owner instead.
if [ -n "${RUN_OWNER_PID:-}" ]; then
  (while kill -0 "$RUN_OWNER_PID" 2>/dev/null; do sleep 1; done; kill -TERM $$ 2>/dev/null) &
  watchdog=$!
fi


bash scripts/tools.sh cargo-lambda dynamodb-local

if [ -n "${AWS_ENDPOINT_URL:-}" ]; then
  endpoint="$AWS_ENDPOINT_URL"
  say "using the DynamoDB at $endpoint (AWS_ENDPOINT_URL); starting none"
else
  if port_open "$ddb_port"; then
    say "port $ddb_port is already in use; set DYNAMODB_PORT, or AWS_ENDPOINT_URL to use what runs there"
    exit 1
  fi
  if [ "${IN_MEMORY:-}" = 1 ]; then
    say "starting DynamoDB Local on 127.0.0.1:$ddb_port, in memory"
    setsid bash scripts/dynamodb-local.sh run "$ddb_port" >"$data_dir/dynamodb-local.log" 2>&1 &
  else
    say "starting DynamoDB Local on 127.0.0.1:$ddb_port, data in $data_dir/dynamodb"
    setsid bash scripts/dynamodb-local.sh run "$ddb_port" "$data_dir/dynamodb" >"$data_dir/dynamodb-local.log" 2>&1 &
  fi
  pids+=("$!")
  wait_for_port "$ddb_port" "DynamoDB Local" "$!" || { cat "$data_dir/dynamodb-local.log" >&2; exit 1; }
  endpoint="http://127.0.0.1:$ddb_port"
fi

# The functions read the same variables as in AWS; DynamoDB Local accepts any
# credentials, so fixed dummy ones keep a developer's real ones out of it.
export AWS_ENDPOINT_URL="$endpoint" AWS_REGION="${AWS_REGION:-us-east-1}" \
  AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local \
  USERS_TABLE=users CREDENTIALS_TABLE=credentials CHATS_TABLE=chats \
  CHAT_COST="${CHAT_COST:-100}" INITIAL_TOKENS="${INITIAL_TOKENS:-4000}" \
  SESSION_TTL_SECONDS="${SESSION_TTL_SECONDS:-86400}" RUST_LOG="${RUST_LOG:-info}"
unset AWS_PROFILE AWS_SESSION_TOKEN
# Every client of make run reaches the functions from the same loopback
# address, so a per-IP limit here would be one limit on every local client
# at once (a test suite, Schemathesis, a browser): off unless asked for.
export LOGIN_CHECKS_PER_IP="${LOGIN_CHECKS_PER_IP:-0}" REGISTRATIONS_PER_IP="${REGISTRATIONS_PER_IP:-0}"

build
cargo run --quiet -p devtools --bin create-tables

# cargo lambda watch listens on a port of its own; local-gateway serves
# API_PORT in front of it and passes everything through, except what the
# emulator would answer with its own 500 before any function runs (a body or
# header value that is not UTF-8), which it presents as API Gateway would.
watch_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
say "starting cargo lambda watch on 127.0.0.1:$watch_port"
env_vars="AWS_ENDPOINT_URL,AWS_REGION,AWS_ACCESS_KEY_ID,AWS_SECRET_ACCESS_KEY,USERS_TABLE,CREDENTIALS_TABLE,CHATS_TABLE,CHAT_COST,INITIAL_TOKENS,SESSION_TTL_SECONDS,RUST_LOG,LOGIN_CHECKS_PER_IP,REGISTRATIONS_PER_IP"
# A model behind chat, when asked for (the dummy reply otherwise): e.g. a
# local stand-in of Bedrock's Converse at AWS_ENDPOINT_URL_BEDROCK_RUNTIME.
for name in MODEL_ID MODEL_TIMEOUT_SECONDS MODEL_MAX_TOKENS AWS_ENDPOINT_URL_BEDROCK_RUNTIME \
  PRICING MODEL_INPUT_PRICE MODEL_OUTPUT_PRICE MODEL_FREE MODEL_TOKENS_PER_SECOND \
  OPEN_CALLS_PER_USER HOLD_SECONDS CHATS_PER_MINUTE REGISTRATION CATALOG \
  CORS_ALLOW_ORIGINS; do
  if [ -n "${!name:-}" ]; then env_vars+=",$name"; fi
done
# The catalog's file, read by each function at its cold start: by its full
# path, since the functions run in the workspace's folders.
if [ -n "${CATALOG_FILE:-}" ]; then
  [ -r "$CATALOG_FILE" ] || { say "CATALOG_FILE $CATALOG_FILE cannot be read"; exit 1; }
  CATALOG_FILE="$(cd "$(dirname "$CATALOG_FILE")" && pwd)/$(basename "$CATALOG_FILE")"
  env_vars+=",CATALOG_FILE"
fi
watch_env=()
for name in ${env_vars//,/ }; do watch_env+=(--env-var "$name=${!name}"); done
# Its own log stays at warnings; the functions log at RUST_LOG, passed below.
RUST_LOG=warn setsid cargo lambda watch --quiet --ignore-changes "${profile[@]}" \
  --concurrency "${CONCURRENCY:-1}" -A 127.0.0.1 -P "$watch_port" "${watch_env[@]}" &
pids+=("$!")
wait_for_port "$watch_port" "cargo lambda watch" "$!"

say "starting local-gateway on 127.0.0.1:$api_port"
gateway_dir=debug
[ "${RELEASE:-}" = 1 ] && gateway_dir=release
# Until every function has started, the gateway answers 503 with
# Retry-After: 1 (a script waits for any other answer); the ready file,
# made below, tells it they have.
ready_file="$data_dir/ready"
rm -f "$ready_file"
setsid "${CARGO_TARGET_DIR:-$root/target}/$gateway_dir/local-gateway" "$api_port" "$watch_port" \
  "$ready_file" &
pids+=("$!")
wait_for_port "$api_port" "local-gateway" "$!"

# watch starts a function on its first request; start all of them now, one
# plain path of each from the router, straight at the emulator, each until
# it answers itself (a PUT is a 405 or 404 of ours) rather than with the
# emulator's own 500 of a function still starting.
for path in $(router_routes | awk '$1 !~ /[{*]/ && !seen[$2]++ { print $1 }'); do
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 300 -X PUT \
      "http://127.0.0.1:$watch_port$path") || code=000
    [ "$code" != 500 ] && [ "$code" != 000 ] && break
    sleep 0.5
  done
done
touch "$ready_file"

# The sweeper on its schedule, as EventBridge runs it in AWS: it settles
# holds whose chat never did (a function that died, a settle that could not
# commit). What it closes is shown here.
sweep_every="${SWEEP_SECONDS:-60}"
if [ "$sweep_every" != 0 ]; then
  setsid bash -c '
    while sleep "$1"; do
      out=$(cargo lambda invoke sweeper --invoke-address 127.0.0.1 --invoke-port "$2" \
        --data-ascii "{}" 2>&1) || { echo "[run] sweeper failed: $out" >&2; continue; }
      case "$out" in
        *"\"charged_at_bound\":0"*"\"released\":0"*"\"settled_owed\":0"*) ;;
        *) echo "[run] sweeper: $out" >&2 ;;
      esac
    done' sweeper "$sweep_every" "$watch_port" &
  pids+=("$!")
fi

# The alerts, as the alerts function publishes them to EventBridge in AWS:
# one JSON line per crossing (a balance below its user's alert_below, a
# key's budget at 80 % or 100 %), from the users table's stream.
setsid "${CARGO_TARGET_DIR:-$root/target}/debug/alerts-local" &
pids+=("$!")

cat >&2 <<MSG
[run] ready: the API is on http://127.0.0.1:$api_port  (Ctrl-C stops it)
[run] try:   curl -s -X POST http://127.0.0.1:$api_port/register/ -H 'Content-Type: application/json' -d '{"username": "alice", "password": "correct-horse-battery"}'
[run] OpenAI clients: base_url http://127.0.0.1:$api_port/v1, api_key a login token or API key
MSG
# Whichever ends first (DynamoDB Local, watch or the gateway) ends the run.
wait -n "${pids[@]}"
