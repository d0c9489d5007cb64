#!/usr/bin/env bash
# Runs the local stack with access control required (scripts/run-local.sh,
# AUTH=on) and walks scripts/journey.sh through it, then stops the stack.
#
#   scripts/auth-journey.sh                   embedded SQLite
#   scripts/with-postgres.sh scripts/auth-journey.sh
#                                             PostgreSQL: one database per service
#                                             on the cluster of DATABASE_SERVER_URL
# Ports 17201-17204, 18280 and 17222 (nats-server, when installed: events on); PROFILE
# as run-local.sh (default debug here).
set -euo pipefail
cd "$(dirname "$0")/.."

data_dir=$(mktemp -d)
log=$(mktemp)
databases=()
if [ -n "${DATABASE_SERVER_URL:-}" ]; then
  for service in inventory order pricing identity; do
    name="journey_${service}_$$"
    psql "$DATABASE_SERVER_URL" -qc "CREATE DATABASE $name" >/dev/null
    upper=$(echo "$service" | tr '[:lower:]' '[:upper:]')
    databases+=("${upper}_DATABASE_URL=${DATABASE_SERVER_URL%/*}/$name")
  done
fi
store=${DATABASE_SERVER_URL:+PostgreSQL}
echo "the journey on ${store:-SQLite}"

env "${databases[@]}" PROFILE="${PROFILE:-debug}" AUTH=on DEMO_CHAOS=off DATA_DIR="$data_dir" \
  INVENTORY_PORT=17201 ORDER_PORT=17202 PRICING_PORT=17203 IDENTITY_PORT=17204 CLIENT_PORT=18280 NATS_PORT=17222 \
  scripts/run-local.sh >"$log" 2>&1 &
stack=$!
trap 'kill "$stack" 2>/dev/null || true; wait "$stack" 2>/dev/null || true; rm -rf "$data_dir" "$log"' EXIT
for _ in $(seq 1 600); do
  grep -q "Ctrl-C stops everything" "$log" && break
  kill -0 "$stack" 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.5
done
scripts/journey.sh http://localhost:17204 http://localhost:17201 http://localhost:17203 http://localhost:17202 ||
  { echo "-- the stack's log --"; cat "$log"; exit 1; }
