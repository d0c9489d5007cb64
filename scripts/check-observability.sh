#!/usr/bin/env bash
# Checks the observability configuration offline, as CI runs it:
#
#   1. observability/prometheus/prometheus.yml: `promtool check config --syntax-only`, then a
#      full `promtool check config` of a copy whose rule_files point at the repo's rules
#      (the real path, /etc/prometheus/rules, exists only inside the Prometheus container)
#   2. observability/prometheus/rules/*.yml: `promtool check rules --lint=all --lint-fatal`
#   3. every alert has a runbook annotation, and its unit tests (tests/*.yml) hold a case
#      where it fires and a case where it does not
#   4. observability/prometheus/tests/*.yml: `promtool test rules`
#   5. the dashboards and collector configuration: `python3 scripts/check-dashboards.py`,
#      when that file exists
#
# promtool comes from the Debian package `prometheus` (2.42 on bookworm; compose runs
# prom/prometheus v2.55.1, which reads everything 2.42 does), installed when missing.
# Prints each step; exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."

prom=observability/prometheus
fail() { echo "observability check: FAILED: $*" >&2; exit 1; }
step() { echo "observability check: $*"; }

. scripts/lib/need.sh
need promtool:prometheus || fail "promtool (Debian package prometheus)"
step "$(promtool --version 2>&1 | head -n 1)"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# 1. The configuration: syntax, then everything it references with the rules at their
#    place in the repo.
step "check config --syntax-only $prom/prometheus.yml"
promtool check config --syntax-only "$prom/prometheus.yml" >"$work/out" 2>&1 \
  || { cat "$work/out" >&2; fail "promtool check config --syntax-only"; }
grep -q '/etc/prometheus/rules/\*\.yml' "$prom/prometheus.yml" \
  || fail "$prom/prometheus.yml does not load /etc/prometheus/rules/*.yml (compose mounts the rules there)"
sed "s#/etc/prometheus/rules/#$PWD/$prom/rules/#" "$prom/prometheus.yml" >"$work/prometheus.yml"
step "check config (rule_files rewritten to $prom/rules/)"
promtool check config "$work/prometheus.yml" >"$work/out" 2>&1 \
  || { cat "$work/out" >&2; fail "promtool check config"; }
grep -E 'SUCCESS|rules found' "$work/out" | sed 's/^/  /'

# 2. The rules.
rules=("$prom"/rules/*.yml)
tests=("$prom"/tests/*.yml)
[ -e "${rules[0]}" ] || fail "no rule files in $prom/rules"
[ -e "${tests[0]}" ] || fail "no rule tests in $prom/tests"
step "check rules --lint=all --lint-fatal ${rules[*]}"
promtool check rules --lint=all --lint-fatal "${rules[@]}" >"$work/out" 2>&1 \
  || { cat "$work/out" >&2; fail "promtool check rules"; }
grep -E 'SUCCESS' "$work/out" | sed 's/^/  /'

# 3. Every alert: a runbook, a case that fires and a case that does not. A small reader
#    of the two layouts these files use (promtool has already parsed them as YAML).
step "every alert has a runbook, a firing test case and a quiet one"
python3 - "${#rules[@]}" "${rules[@]}" "${tests[@]}" <<'PY' || fail "alerts without runbook or tests (above)"
import re, sys

n = int(sys.argv[1])
rule_files, test_files = sys.argv[2:2 + n], sys.argv[2 + n:]
alerts, problems = {}, []
for path in rule_files:
    text = open(path, encoding="utf-8").read()
    # One rule per "- alert:" / "- record:" item; each alert's block up to the next item.
    for block in re.split(r"\n(?=\s*- (?:alert|record):)", text):
        m = re.match(r"\s*- alert:\s*(\S+)", block)
        if m:
            alerts.setdefault(m.group(1), []).append(path)
            if not re.search(r"^\s+runbook:\s*\S", block, re.M):
                problems.append(f"{m.group(1)} in {path}: no runbook annotation")
firing, quiet = set(), set()
for path in test_files:
    lines = open(path, encoding="utf-8").read().splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"\s*- alertname:\s*(\S+)", line)
        if not m:
            continue
        for follow in lines[i + 1:i + 4]:
            e = re.match(r"\s*exp_alerts:\s*(.*)$", follow)
            if e:
                (quiet if e.group(1).strip() == "[]" else firing).add(m.group(1))
                break
for name in sorted(alerts):
    if name not in firing:
        problems.append(f"{name}: no test case where it fires")
    if name not in quiet:
        problems.append(f"{name}: no test case where it stays quiet")
for name in sorted((firing | quiet) - set(alerts)):
    problems.append(f"{name}: tested but no such alert")
for p in problems:
    print("  " + p, file=sys.stderr)
print(f"  {len(alerts)} alerts: {', '.join(sorted(alerts))}")
sys.exit(1 if problems else 0)
PY

# 4. The rules' unit tests.
step "test rules ${tests[*]}"
promtool test rules "${tests[@]}" >"$work/out" 2>&1 \
  || { cat "$work/out" >&2; fail "promtool test rules"; }
grep -cE '^\s+SUCCESS' "$work/out" | sed 's/^/  test files passed: /'

# 5. Dashboards and collector (another check's business; run when it exists).
if [ -f scripts/check-dashboards.py ]; then
  step "python3 scripts/check-dashboards.py"
  python3 scripts/check-dashboards.py || fail "scripts/check-dashboards.py"
else
  step "scripts/check-dashboards.py not present: dashboards not checked"
fi
step "OK"
