#!/usr/bin/env bash
# Schemathesis against a running local API (`make run`): openapi.yaml with
# every check and every phase (examples, coverage, fuzzing, stateful), as
# set in schemathesis.toml. `make test` runs it against a `make run` of its
# own; with `make run` going, run it yourself:
#
#   bash scripts/schemathesis.sh                         # http://127.0.0.1:3000
#   bash scripts/schemathesis.sh http://127.0.0.1:3100   # another port
#
# Installs the pinned Schemathesis into .tools/schemathesis if missing, and
# registers users of its own for the run, which Schemathesis logs in as
# (again whenever a token stops working, as after a fuzzed /logout/), and
# checks after the run that they can still log in and chat. Each is granted
# a balance that lasts the run through `make ops` (chat-ops), on the
# DynamoDB Local at AWS_ENDPOINT_URL, else on DYNAMODB_PORT (8000). Any further arguments go to `st run` (e.g. --max-examples 5).
# Exits non-zero on any failure. Reports go to target/schemathesis/.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
say() { echo "[schemathesis] $*" >&2; }

url="${1:-http://127.0.0.1:${API_PORT:-3000}}"
shift || true

bash scripts/tools.sh schemathesis

# Names no other run has used (the data of `make run` outlives a run), in
# the ASCII the contract allows, and a password only this run knows. Two
# users: the OpenAI-compatible /v1/ operations spend a balance of their own,
# apart from /chat/'s.
SCHEMATHESIS_USERNAME="schemathesis-$(date +%s)-$$"
SCHEMATHESIS_OPENAI_USERNAME="$SCHEMATHESIS_USERNAME-v1"
SCHEMATHESIS_PASSWORD="$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')"
SCHEMATHESIS_BASE_URL="$url"
export SCHEMATHESIS_USERNAME SCHEMATHESIS_OPENAI_USERNAME SCHEMATHESIS_PASSWORD SCHEMATHESIS_BASE_URL
for username in "$SCHEMATHESIS_USERNAME" "$SCHEMATHESIS_OPENAI_USERNAME"; do
  status=$(curl -s -o /dev/null -w '%{http_code}' --max-time 120 -X POST "$url/register/" \
    -H 'Content-Type: application/json' \
    -d "{\"username\": \"$username\", \"password\": \"$SCHEMATHESIS_PASSWORD\"}") || status=none
  if [ "$status" != 201 ]; then
    say "registering the run's user at $url/register/ answered $status, not 201: is the API running (make run)?"
    exit 1
  fi
done

# A balance that lasts the run, so that a valid chat late in it is answered
# and charged rather than refused for want of tokens: granted (with a ledger
# entry) through chat-ops on the DynamoDB Local that `make run` uses (its
# port: DYNAMODB_PORT, or AWS_ENDPOINT_URL as `make test` sets it).
for username in "$SCHEMATHESIS_USERNAME" "$SCHEMATHESIS_OPENAI_USERNAME"; do
  if ! make -s ops ARGS="grant $username 10000000 --reason schemathesis-run" >/dev/null; then
    say "could not grant $username a balance for the run (make ops): is DYNAMODB_PORT the port of make run's DynamoDB Local?"
    exit 1
  fi
done
# The models valid requests name (the hooks set them): the first chat model
# /v1/models lists, and the first embedding model (none: empty).
models=$(
  token=$(curl -s --max-time 120 -X POST "$url/login/" -H 'Content-Type: application/json' \
    -d "{\"username\": \"$SCHEMATHESIS_USERNAME\", \"password\": \"$SCHEMATHESIS_PASSWORD\"}" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')
  curl -s --max-time 120 "$url/v1/models" -H "Authorization: Bearer $token" |
    python3 -c 'import json, sys
data = json.load(sys.stdin)["data"]
first = lambda kind: next((m["id"] for m in data if m.get("kind", "chat") == kind), "")
print(first("chat"), first("embedding"))'
) || { say "could not read the served models from $url/v1/models"; exit 1; }
read -r SCHEMATHESIS_MODEL SCHEMATHESIS_EMBEDDING_MODEL <<<"$models"
[ -n "$SCHEMATHESIS_MODEL" ] || { say "$url/v1/models lists no chat model"; exit 1; }
export SCHEMATHESIS_MODEL SCHEMATHESIS_EMBEDDING_MODEL

say "running against $url (settings: schemathesis.toml)"
# --config-file comes before `run`; every phase and check is named here so
# that the command says what it runs.
status=0
"$root/.tools/schemathesis/bin/st" --config-file "$root/schemathesis.toml" run openapi.yaml \
  --url "$url" --checks all --phases examples,coverage,fuzzing,stateful "$@" || status=$?

# The run's users must end it able to log in and chat (their balance lasts
# the run). The run may make
# other users' logins wait (429) and fill the run user's API keys, never
# lock its own users out of chatting (a slowed-down login, a disabled
# account, a chat rate reached: none of those is something the run means
# to do to them).
headers=$(mktemp)
for username in "$SCHEMATHESIS_USERNAME" "$SCHEMATHESIS_OPENAI_USERNAME"; do
  answer=$(curl -s -w '\n%{http_code}' --max-time 120 -X POST "$url/login/" \
    -H 'Content-Type: application/json' \
    -d "{\"username\": \"$username\", \"password\": \"$SCHEMATHESIS_PASSWORD\"}") || answer=$'\nnone'
  if [ "${answer##*$'\n'}" != 200 ]; then
    say "after the run, $username cannot log in: ${answer//$'\n'/ }"
    status=1
    continue
  fi
  token=$(printf '%s' "${answer%$'\n'*}" | python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')
  # The run may have left the user at the per-minute chat cap: that is
  # waited out, as Retry-After says, once; anything else is a failure.
  for attempt in 1 2; do
    answer=$(curl -s -D "$headers" -w '\n%{http_code}' --max-time 120 -X POST "$url/chat/" \
      -H "Authorization: Token $token" -H 'Content-Type: application/json' \
      -d '{"message": "still here?"}') || answer=$'\nnone'
    wait=$(awk 'tolower($1) == "retry-after:" {print $2 + 0}' "$headers")
    if [ "$attempt" = 1 ] && [ "${answer##*$'\n'}" = 429 ] && [[ "$answer" == *'"rate_limited"'* ]] \
      && [ -n "$wait" ] && [ "$wait" -le 60 ]; then
      say "after the run, $username is at the chat cap; waiting ${wait} s as Retry-After says"
      sleep "$wait"
      continue
    fi
    break
  done
  case "${answer##*$'\n'}" in
    200) ;;
    *) say "after the run, $username cannot chat: ${answer//$'\n'/ }"; status=1 ;;
  esac
done
rm -f "$headers"
[ "$status" != 0 ] || say "after the run, its users can still log in and chat"
exit "$status"
