#!/usr/bin/env bash
# `make audit`: pip-audit over the locks (requirements-bootstrap.lock + requirements-dev.lock, a superset of
# requirements.lock), package by package as pinned and hashed, without resolving or installing anything.
#
# It only ever reports a pass it has checked. Before the audit a canary - setuptools 65.5.0, which has
# published advisories - is looked up; if no advisory service returns them (no network to it, or an index
# that answers but holds no advisory data, in which case pip-audit would skip every package and still say
# "No known vulnerabilities found"), the script says that nothing was checked and exits 0. A package that
# the service skips during the real audit counts as unchecked and fails the audit, like a vulnerability.
set -uo pipefail
cd "$(dirname "$0")/.."
PIP_AUDIT=${PIP_AUDIT:-.venv/bin/pip-audit}
LOCKS=(requirements-bootstrap.lock requirements-dev.lock)
# AUDIT_OSV_URL: an OSV mirror (its /v1/query endpoint) for machines that reach one but not the default.
OSV_ARGS=()
[ -n "${AUDIT_OSV_URL:-}" ] && OSV_ARGS=(--osv-url "$AUDIT_OSV_URL")

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "setuptools==65.5.0" >"$tmp/canary.txt"

run() {  # run SERVICE OUT ARGS...: pip-audit as JSON into OUT, its chatter into OUT.log
  local service=$1 out=$2
  shift 2
  "$PIP_AUDIT" --vulnerability-service "$service" --disable-pip --progress-spinner off --timeout 15 \
    --format json --output "$out" "${OSV_ARGS[@]}" "$@" >"$out.log" 2>&1
}
canary_seen() {  # canary_seen OUT: did the service report an advisory for the canary?
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if any(x.get("vulns") for x in d["dependencies"]) else 1)' "$1" 2>/dev/null
}

service=""
for candidate in pypi osv; do
  run "$candidate" "$tmp/canary-$candidate.json" --no-deps -r "$tmp/canary.txt"
  if canary_seen "$tmp/canary-$candidate.json"; then service=$candidate; break; fi
done
if [ -z "$service" ]; then
  echo "audit: the advisory database (pip-audit's services: PyPI's vulnerability data and OSV) cannot be" \
    "reached from this machine; nothing was checked."
  echo "audit: the canary (setuptools 65.5.0, which has known advisories) came back without them from both."
  exit 0
fi

args=()
for lock in "${LOCKS[@]}"; do args+=(-r "$lock"); done
run "$service" "$tmp/audit.json" --require-hashes "${args[@]}"
rc=$?
if [ ! -s "$tmp/audit.json" ]; then
  echo "audit: pip-audit failed (exit $rc) before reporting; nothing was checked:" >&2
  tail -n 20 "$tmp/audit.json.log" >&2
  exit 1
fi
python3 - "$tmp/audit.json" "$service" <<'PY'
import json
import sys

report = json.load(open(sys.argv[1]))
deps = report["dependencies"]
skipped = [d for d in deps if "skip_reason" in d]
vulnerable = [d for d in deps if d.get("vulns")]
checked = len(deps) - len(skipped)
print(f"audit: {checked} of {len(deps)} locked packages checked against the {sys.argv[2]} advisory service")
for d in vulnerable:
    for v in d["vulns"]:
        fixes = ", ".join(v.get("fix_versions") or []) or "none yet"
        print(f"audit: VULNERABLE {d['name']} {d['version']}: {v['id']} (fixed in: {fixes})")
for d in skipped:
    print(f"audit: NOT CHECKED {d['name']}: {d['skip_reason']}")
if vulnerable or skipped:
    sys.exit(1)
print("audit: no known vulnerabilities in the checked packages")
PY
