#!/usr/bin/env bash
# The OpenAI-compatible routes through the official `openai` Python SDK
# (tests/openai, pytest) against a running local API (`make run`). `make
# test` runs it against a `make run` of its own, right after Schemathesis;
# with `make run` going, run it yourself:
#
#   bash scripts/openai-sdk.sh                              # http://127.0.0.1:3000, DynamoDB Local on 8000
#   bash scripts/openai-sdk.sh http://127.0.0.1:3100 8100   # another make run (API_PORT, DYNAMODB_PORT)
#
# The second argument is the port of the DynamoDB Local that API uses: the
# tests check each user's ledger there with `chat-ops audit` (built here)
# on the tables `make run` creates. Installs the pinned SDK and pytest into
# .tools/openai if missing. Quiet on success but for a summary line; on a
# failure prints pytest's whole report. Any further arguments go to pytest
# (e.g. -k stream).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
say() { echo "[openai-sdk] $*" >&2; }

url="${1:-http://127.0.0.1:${API_PORT:-3000}}"
ddb_port="${2:-${DYNAMODB_PORT:-8000}}"
shift 2 2>/dev/null || shift $# || true

bash scripts/tools.sh openai

# The audit's tool: the workspace's chat-ops, as `make ops` runs it.
cargo build --quiet -p chat-ops \
  || { say "cannot build chat-ops (cargo build -p chat-ops), which the tests audit each user with"; exit 1; }
chat_ops="${CARGO_TARGET_DIR:-$root/target}/debug/chat-ops"

status=$(curl -s -o /dev/null -w '%{http_code}' --max-time 120 \
  -H 'Authorization: Bearer none' "$url/v1/models") || status=none
case "$status" in
  none|000) say "no answer from $url: is the API running (make run)?"; exit 1 ;;
  404) say "$url has no GET /v1/models route (a make run of this tree?)"; exit 1 ;;
esac

log=$(mktemp)
trap 'rm -f "$log"' EXIT
started=$SECONDS
# No cache folder or bytecode in the tree (the tests drop any OPENAI_*
# variables of the developer's themselves).
if CHAT_API_URL="$url" CHAT_DYNAMODB_URL="http://127.0.0.1:$ddb_port" CHAT_OPS="$chat_ops" \
  PYTHONDONTWRITEBYTECODE=1 \
  "$root/.tools/openai/bin/python" -m pytest -p no:cacheprovider -q -rfE --tb=short --color=no \
  tests/openai "$@" >"$log" 2>&1; then
  say "$(grep -E '^[0-9]+ passed' "$log" | tail -n 1 || echo passed) (against $url, $((SECONDS - started)) s)"
else
  cat "$log" >&2
  say "FAILED against $url (DynamoDB Local on port $ddb_port): see pytest's report above"
  exit 1
fi
