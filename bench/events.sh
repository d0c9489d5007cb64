#!/usr/bin/env bash
# The events run of scripts/bench.sh (which documents it): POST /orders with
# events off and on, in turns, SQLite, release build, chaos off.
#   bench/events.sh DURATION CONNECTIONS THREADS
set -euo pipefail
duration=$1 connections=$2 threads=$3
data_dir=$(mktemp -d)
pids=()
nats_pid=
cleanup() {
  [ ${#pids[@]} -gt 0 ] && kill "${pids[@]}" 2>/dev/null
  [ -n "$nats_pid" ] && kill "$nats_pid" 2>/dev/null
  wait 2>/dev/null || true
  rm -rf "$data_dir"
}
trap cleanup EXIT
export HOST=127.0.0.1 RUST_LOG=warn
nats_url=nats://127.0.0.1:27222

nats-server -js -a 127.0.0.1 -p 27222 -sd "$data_dir/nats" >"$data_dir/nats.log" 2>&1 & nats_pid=$!
for _ in $(seq 1 100); do (echo >/dev/tcp/127.0.0.1/27222) 2>/dev/null && break; sleep 0.05; done

ready() { for _ in $(seq 1 200); do curl -fs "http://127.0.0.1:$1/health/ready" >/dev/null && return; sleep 0.05; done; }
start() { # off|on
  local run=$data_dir/run-$RANDOM events=()
  mkdir -p "$run"
  [ "$1" = on ] && events=(NATS_URL=$nats_url)
  env "${events[@]}" PORT=27001 DATA_DIR="$run" INVENTORY_CATALOG=bench/inventory-catalog.json \
    target/release/inventory & pids=($!)
  env "${events[@]}" PORT=27003 DATA_DIR="$run" target/release/pricing & pids+=($!)
  env "${events[@]}" PORT=27002 DATA_DIR="$run" INVENTORY_URL=http://127.0.0.1:27001 \
    PRICING_URL=http://127.0.0.1:27003 target/release/order & pids+=($!)
  for port in 27001 27003 27002; do ready $port; done
}
stop() { kill "${pids[@]}" 2>/dev/null; wait "${pids[@]}" 2>/dev/null || true; pids=(); }

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
