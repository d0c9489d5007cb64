#!/usr/bin/env bash
# A watchable load: simulated shoppers (loadgen/locustfile.py) against a running
# stack. Writes an HTML report with charts (requests per second, response time
# percentiles, failures over time) and CSV files, and prints a one-line summary.
# Exits non-zero when the failure ratio is above MAX_FAILURE_RATIO.
#
#   scripts/run-local.sh &  then  scripts/loadgen.sh
#   USERS=50 SPAWN_RATE=10 RUN_TIME=2m REPORT_DIR=loadgen/report scripts/loadgen.sh
#   INVENTORY_URL=... PRICING_URL=... ORDER_URL=... scripts/loadgen.sh
#   WEB=1 scripts/loadgen.sh     # Locust's live web UI on :8089 instead of headless
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${LOADGEN_VENV:-.cache/loadgen-venv}
if [ ! -x "$venv/bin/locust" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet -r loadgen/requirements.txt
fi

report_dir=${REPORT_DIR:-loadgen/report}
mkdir -p "$report_dir"
if [ "${WEB:-0}" = 1 ]; then
  exec "$venv/bin/locust" -f loadgen/locustfile.py --web-host 127.0.0.1
fi
exec "$venv/bin/locust" -f loadgen/locustfile.py --headless --only-summary \
  --users "${USERS:-20}" --spawn-rate "${SPAWN_RATE:-5}" --run-time "${RUN_TIME:-60s}" \
  --html "$report_dir/report.html" --csv "$report_dir/stats" 2>&1
