#!/usr/bin/env bash
# Part of `make validate` (so of `make test` and `make sam-build`): checkov,
# the scanner teams run over a template before they deploy it, over
# template.yaml, the way such a team would run it: once for CloudFormation
# alone and once with checkov's defaults (every framework that applies).
#
# Fails on any failed check, and on any check skipped without a reason: a
# finding we decline is declined in the template, in the resource's
# `Metadata: checkov: skip:` with a one-line comment a reviewer can accept
# (docs/operations.md#security-review lists them).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
say() { echo "[checkov] $*" >&2; }

bash scripts/tools.sh checkov
checkov="$root/.tools/checkov/bin/checkov"
report=$(mktemp)
trap 'rm -f "$report"' EXIT

status=0
for frameworks in "cloudformation" "default"; do
  args=(-f template.yaml --skip-download --soft-fail --output json)
  if [ "$frameworks" != "default" ]; then args+=(--framework "$frameworks"); fi
  # --soft-fail: the verdict is ours, below, so that a skip without a
  # reason fails too.
  "$checkov" "${args[@]}" >"$report"
  python3 - "$report" "$frameworks" <<'PY' || status=1
import json
import sys

path, frameworks = sys.argv[1], sys.argv[2]
with open(path) as f:
    text = f.read()
# One report per framework that found something to scan: an object for
# one, a list for several, and an empty summary for none.
data = json.loads(text) if text.strip() else []
reports = data if isinstance(data, list) else [data]
reports = [r for r in reports if "results" in r]
if not reports:
    sys.exit(f"[checkov] --framework {frameworks}: checkov scanned nothing in template.yaml")
problems = []
for report in reports:
    results, summary = report["results"], report["summary"]
    print(
        f"[checkov] --framework {frameworks}: {report['check_type']}: {summary['passed']} passed, "
        f"{summary['failed']} failed, {summary['skipped']} skipped "
        f"(checkov {summary.get('checkov_version', '?')})",
        file=sys.stderr,
    )
    for check in results["failed_checks"]:
        problems.append(
            f"{check['check_id']} failed on {check['resource']} "
            f"(lines {check['file_line_range']}): {check['check_name']}"
        )
    for check in results["skipped_checks"]:
        reason = (check["check_result"].get("suppress_comment") or "").strip()
        if not reason or reason == "No comment provided":
            problems.append(
                f"{check['check_id']} is skipped on {check['resource']} without a reason"
            )
for problem in problems:
    print(f"[checkov] {problem}", file=sys.stderr)
sys.exit(1 if problems else 0)
PY
done
if [ "$status" -ne 0 ]; then
  say "fix the finding, or skip it in the resource's Metadata (checkov: skip: - id, comment) with the reason"
  exit 1
fi
