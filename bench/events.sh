#!/usr/bin/env bash
# The events run of scripts/bench.sh (which documents it): POST /orders with
# events off and on, in turns, SQLite, release build, chaos off.
#   bench/events.sh DURATION CONNECTIONS THREADS
# The processes are started and stopped by scripts/lib/stack.sh.
set -euo pipefail
. scripts/lib/stack.sh   # run from the repository (bench.sh does)
duration=$1 connections=$2 threads=$3
data_dir=$(mktemp -d)
pids=()
cleanup() {
  stack_stop_all
  rm -rf "$data_dir"
}
trap cleanup EXIT
export HOST=127.0.0.1 RUST_LOG=warn
STACK_BIN_DIR=target/release

stack_nats 27222 "$data_dir/nats" "$data_dir/nats.log"
nats_url=$STACK_NATS_URL

ready() { stack_ready "$1" "http://127.0.0.1:$2/health/ready" || exit 1; }
start() { # off|on
  local run=$data_dir/run-$RANDOM events=()
  mkdir -p "$run"
  [ "$1" = on ] && events=("NATS_URL=$nats_url")
  # The services' output goes to this terminal (log -).
  stack_service inventory - "${events[@]}" PORT=27001 DATA_DIR="$run" INVENTORY_CATALOG=bench/inventory-catalog.json
  pids=("$STACK_PID")
  stack_service pricing - "${events[@]}" PORT=27003 DATA_DIR="$run"
  pids+=("$STACK_PID")
  stack_service order - "${events[@]}" PORT=27002 DATA_DIR="$run" INVENTORY_URL=http://127.0.0.1:27001 \
    PRICING_URL=http://127.0.0.1:27003
  pids+=("$STACK_PID")
  ready inventory 27001
  ready pricing 27003
  ready order 27002
}
stop() { stack_stop "${pids[@]}"; pids=(); }

flat_out() {
  wrk -t"$threads" -c"$connections" -d"$duration" -s bench/post-order.lua http://127.0.0.1:27002/orders |
    awk '/Requests\/sec/ {printf "%.0f", $2}'
}
steady() {
  .cache/oha/bin/oha -z "$duration" -q 1000 -c 100 --latency-correction --no-tui --output-format json \
    -m POST -T application/json \
    -d '{"customer_id": "bench", "items": [{"sku": "A002", "quantity": 1}]}' http://127.0.0.1:27002/orders |
    jq -r '"\(.latencyPercentiles.p50 * 1000 * 100 | round / 100) \(.latencyPercentiles.p99 * 1000 * 100 | round / 100) \([.statusCodeDistribution | to_entries[] | select(.key | startswith("2") | not) | .value] | add // 0)"'
}

seconds=${duration%s}
printf '%-8s %-6s %12s %12s %12s %8s %24s\n' round events "flat rps" "1k/s p50 ms" "1k/s p99 ms" non_2xx "commit->consumer p50/p99"
for round in 1 2; do
  for mode in off on; do
    start "$mode"
    rps=$(flat_out)
    probe=
    if [ "$mode" = on ]; then
      target/release/examples/event_latency "$nats_url" SHOP_ORDER "$((seconds + 3))" >"$data_dir/probe" &
      probe=$!
      for _ in $(seq 1 100); do grep -q following "$data_dir/probe" && break; sleep 0.05; done
    fi
    read -r p50 p99 errors < <(steady)
    latency=-
    if [ -n "$probe" ]; then
      wait "$probe"
      latency=$(awk '/^events/ {printf "%s/%s ms (%s events)", $4, $6, $2}' "$data_dir/probe")
    fi
    printf '%-8s %-6s %12s %12s %12s %8s %24s\n' "$round" "$mode" "$rps" "$p50" "$p99" "$errors" "$latency"
    stop
  done
done
