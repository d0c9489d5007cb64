#!/usr/bin/env bash
# A fixed amount of work for judging the CPU cost of events: starts the three
# services (SQLite, release build, chaos off) with events off or on (and then a
# nats-server), places 3,000 orders at a steady 1,000/s, and stops everything.
# Timed as a whole from outside (e.g. `/usr/bin/time -v`), its CPU seconds are
# what 3,000 orders cost, start-up included.
#   bench/events-cpu.sh off|on
set -euo pipefail
cd "$(dirname "$0")/.."
mode=$1
data_dir=$(mktemp -d)
pids=()
cleanup() {
  [ ${#pids[@]} -gt 0 ] && kill "${pids[@]}" 2>/dev/null
  wait 2>/dev/null || true
  rm -rf "$data_dir"
}
trap cleanup EXIT
export HOST=127.0.0.1 RUST_LOG=error DATA_DIR=$data_dir
events=()
if [ "$mode" = on ]; then
  nats-server -js -a 127.0.0.1 -p 27322 -sd "$data_dir/nats" >/dev/null 2>&1 & pids+=($!)
  for _ in $(seq 1 100); do (echo >/dev/tcp/127.0.0.1/27322) 2>/dev/null && break; sleep 0.02; done
  events=(NATS_URL=nats://127.0.0.1:27322)
fi
ready() { for _ in $(seq 1 200); do curl -fs "http://127.0.0.1:$1/health/ready" >/dev/null && return; sleep 0.02; done; }
env "${events[@]}" PORT=27301 INVENTORY_CATALOG=bench/inventory-catalog.json target/release/inventory & pids+=($!)
env "${events[@]}" PORT=27303 target/release/pricing & pids+=($!)
env "${events[@]}" PORT=27302 INVENTORY_URL=http://127.0.0.1:27301 PRICING_URL=http://127.0.0.1:27303 \
  target/release/order & pids+=($!)
for port in 27301 27303 27302; do ready $port; done
.cache/oha/bin/oha -n 3000 -q 1000 -c 50 --no-tui -m POST -T application/json \
  -d '{"customer_id": "bench", "items": [{"sku": "A002", "quantity": 1}]}' \
  http://127.0.0.1:27302/orders >/dev/null
