#!/usr/bin/env bash
# A fixed amount of work for judging the CPU cost of events: starts the three
# services (SQLite, release build, chaos off) with events off or on (and then a
# nats-server), places 3,000 orders at a steady 1,000/s, and stops everything.
# Timed as a whole from outside (e.g. `/usr/bin/time -v`), its CPU seconds are
# what 3,000 orders cost, start-up included.
#   bench/events-cpu.sh off|on
# The processes are started and stopped by scripts/lib/stack.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/stack.sh
mode=$1
data_dir=$(mktemp -d)
cleanup() {
  stack_stop_all
  rm -rf "$data_dir"
}
trap cleanup EXIT
export HOST=127.0.0.1 RUST_LOG=error DATA_DIR=$data_dir
STACK_BIN_DIR=target/release
events=()
if [ "$mode" = on ]; then
  stack_nats 27322 "$data_dir/nats" /dev/null
  events=("NATS_URL=$STACK_NATS_URL")
fi
# The services' output goes to this terminal (log -).
stack_service inventory - "${events[@]}" PORT=27301 INVENTORY_CATALOG=bench/inventory-catalog.json
stack_service pricing - "${events[@]}" PORT=27303
stack_service order - "${events[@]}" PORT=27302 INVENTORY_URL=http://127.0.0.1:27301 PRICING_URL=http://127.0.0.1:27303
stack_ready inventory http://127.0.0.1:27301/health/ready || exit 1
stack_ready pricing http://127.0.0.1:27303/health/ready || exit 1
stack_ready order http://127.0.0.1:27302/health/ready || exit 1
.cache/oha/bin/oha -n 3000 -q 1000 -c 50 --no-tui -m POST -T application/json \
  -d '{"customer_id": "bench", "items": [{"sku": "A002", "quantity": 1}]}' \
  http://127.0.0.1:27302/orders >/dev/null
