#!/usr/bin/env bash
# `make sam-build`: what `sam deploy` uploads, built and checked offline.
#
# cargo-lambda compiles all functions for arm64 in one cargo run first, in the
# workspace's shared target/ folder; `sam build` then runs cargo-lambda once
# per function, finds everything built, and only copies each bootstrap.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
say() { echo "[sam-build] $*" >&2; }
export SAM_CLI_TELEMETRY=0

bash scripts/tools.sh cargo-lambda sam
# cargo-lambda cross-compiles with zig, but the Rust standard library for the
# target must come with the toolchain: added here when missing (rustup
# fetches it once), as the other tools are installed when missing.
if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
  say "adding the Rust target aarch64-unknown-linux-gnu (one time)"
  rustup target add aarch64-unknown-linux-gnu >&2 \
    || { say "could not add it: rustup target add aarch64-unknown-linux-gnu"; exit 1; }
fi

say "building release arm64 binaries with cargo-lambda (LTO: several minutes from cold)"
cargo lambda build --release --arm64 --quiet
say "sam build"
sam build

python3 - <<'PY'
import pathlib, sys
# Every function in the template, built as an arm64 (ELF e_machine 183) bootstrap.
built = sorted(pathlib.Path(".aws-sam/build").glob("*/bootstrap"))
template = pathlib.Path(".aws-sam/build/template.yaml").read_text()
problems = []
for path in built:
    header = path.read_bytes()[:20]
    machine = int.from_bytes(header[18:20], "little")
    if header[:4] != b"\x7fELF" or machine != 183:
        problems.append(f"{path}: not an arm64 ELF binary")
    print(f"[sam-build] {path.parent.name}: {path.stat().st_size / 1e6:.1f} MB arm64 bootstrap", file=sys.stderr)
functions = template.count("Type: AWS::Serverless::Function")
if len(built) != functions:
    problems.append(f"{len(built)} bootstraps for {functions} functions")
if problems:
    sys.exit("\n".join(problems))
PY
