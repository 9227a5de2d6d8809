#!/usr/bin/env bash
# The web page in a real browser: Debian's headless chromium, driven by
# selenium through chromedriver (tests/web/test_page.py, pytest), against a running
# local API (`make run`), after the page's unit tests in Node
# (tests/web/units.test.mjs). `make test` runs it against its own `make run`,
# after the openai SDK's tests; with `make run` going, run it yourself:
#
#   bash scripts/web-test.sh                                # http://127.0.0.1:3000
#   bash scripts/web-test.sh http://127.0.0.1:3100          # another make run (API_PORT)
#   bash scripts/web-test.sh http://127.0.0.1:3000 --screenshot   # also writes docs/web.png
#
# Installs chromium, chromium-driver, selenium and pytest if missing. Quiet
# on success but for a summary line; on a failure prints pytest's report.
# Any further arguments go to pytest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
say() { echo "[web] $*" >&2; }

url="${1:-http://127.0.0.1:${API_PORT:-3000}}"
shift || true
screenshot=""
if [ "${1:-}" = --screenshot ]; then
  screenshot="$root/docs/web.png"
  shift
fi

bash scripts/tools.sh chromium web

status=$(curl -s -o /dev/null -w '%{http_code}' --max-time 120 "$url/") || status=none
case "$status" in
  200) ;;
  none|000) say "no answer from $url: is the API running (make run)?"; exit 1 ;;
  *) say "$url/ answered $status, not the page (a make run of this tree?)"; exit 1 ;;
esac

log=$(mktemp)
trap 'rm -f "$log"' EXIT
started=$SECONDS
# The page's pure parts first, in Node (which make run already needs).
if ! node --test tests/web/units.test.mjs >"$log" 2>&1; then
  cat "$log" >&2
  say "FAILED: the page's unit tests (node --test tests/web/units.test.mjs)"
  exit 1
fi
if CHAT_API_URL="$url" WEB_SCREENSHOT="$screenshot" PYTHONDONTWRITEBYTECODE=1 \
  "$root/.tools/web/bin/python" -m pytest -p no:cacheprovider -q -rfE --tb=short --color=no \
  tests/web "$@" >"$log" 2>&1; then
  say "$(grep -E '^[0-9]+ passed' "$log" | tail -n 1 || echo passed) (against $url, $((SECONDS - started)) s)"
  [ -z "$screenshot" ] || say "screenshot: docs/web.png"
else
  cat "$log" >&2
  say "FAILED against $url: see pytest's report above"
  exit 1
fi
