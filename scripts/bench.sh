#!/usr/bin/env bash
# Throughput and latency of the services, release build, chaos off, a benchmark
# catalogue with ample stock, wrk (Debian) on the same machine as the services.
# Prints one table: rps, p50, p99, non-2xx answers, and each service's peak RSS;
# POST /orders is measured flat out (wrk) and at a steady 1,000 orders/s (oha,
# from crates.io, built once into .cache/oha: about 7 minutes on 2 cores).
# Rows marked `bare` are the yardstick: bare actix-web handlers (a fixed item; the
# order flow's two downstream calls and nothing else; order/examples/baseline.rs).
# Then each service's time from process start to /health/ready on the embedded
# store (bench/startup.py).
# Not part of the test suite: figures depend on the machine.
#
#   scripts/bench.sh                 # SQLite, then PostgreSQL (throwaway cluster), then
#                                    # the resilience run (SQLite)
#   STORES=sqlite scripts/bench.sh   # one store only
#   RESILIENCE=off scripts/bench.sh  # skip the resilience run
#   EVENTS=off scripts/bench.sh      # skip the events run
#   scripts/bench.sh --events        # only the events run
#   NETLOSS=off scripts/bench.sh     # skip the packet-loss run (it needs root; skipped otherwise)
#   scripts/bench.sh --netloss       # only the packet-loss run (PROFILE=debug: the debug build)
#   DURATION=10s CONNECTIONS=32 THREADS=2 scripts/bench.sh
#
# The resilience run sends a steady 100 orders/s for 60 s while pricing is killed
# (10-25 s) and inventory is restarted slowed past the order service's timeout
# (35-45 s), then prints the order service's 5xx answers while inventory was
# reachable (must be 0; from the kill until the first order placed after the slow
# spell, i.e. until the inventory breaker's trial call closes it, counts as the outage), the share of fallback orders, the breaker transitions,
# p99 latency per phase, and checks that stock is conserved once the reservations
# of failed orders have expired.
# The events run (SQLite) places orders with events off and on (a real
# nats-server with JetStream; every service relaying its outbox), in turns
# (off, on, off, on), flat out and at a steady 1,000/s, and during each steady
# run with events on follows the order stream from a consumer
# (shared/examples/event_latency.rs) for the time from an event's commit to
# its delivery.
# The packet-loss run (root, Linux; scripts/netfault.sh --bench-loss) puts the
# services in network namespaces of their own, drops 50 % of inventory's outgoing
# packets (tc netem loss 50%, or iptables -m statistic where the kernel has no
# netem), and sends 20 single-unit orders/s for 30 s twice: with the order
# service's retries on (its defaults), then off (RETRY_MAX_ATTEMPTS=1); it prints
# the share of orders placed each time.
# Ports 27001-27004 and 27101-27103 lie below Linux's ephemeral range
# (32768-60999), where outbound connections could already hold them.
set -euo pipefail
cd "$(dirname "$0")/.."

duration=${DURATION:-10s}
connections=${CONNECTIONS:-32}
threads=${THREADS:-2}
stores=${STORES:-sqlite postgres}

if [ -z "${1:-}" ]; then
  need=()
  command -v wrk >/dev/null || need+=(wrk)
  command -v jq >/dev/null || need+=(jq)
  if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
  fi
  if [ ! -x .cache/oha/bin/oha ]; then
    echo "Building oha (once)..."
    cargo install oha --version 1.16.0 --locked --quiet --root .cache/oha
  fi
  echo "Building (release)..."
  cargo build --release --bins --example baseline --example event_latency --quiet
  printf '%-10s %-22s %10s %9s %9s %8s\n' store endpoint rps p50_ms p99_ms non_2xx
  for store in $stores; do
    if [ "$store" = postgres ]; then
      scripts/with-postgres.sh bash "$0" --store postgres
    else
      bash "$0" --store sqlite
    fi
  done
  echo
  python3 bench/startup.py target/release 5
  [ "${RESILIENCE:-on}" = off ] || { echo; bash "$0" --resilience; }
  [ "${EVENTS:-on}" = off ] || { echo; bash "$0" --events; }
  [ "${NETLOSS:-on}" = off ] || { echo; bash "$0" --netloss; }
  exit 0
fi

if [ "$1" = --events ]; then
  command -v nats-server >/dev/null || { apt-get update -qq && apt-get install -y -qq nats-server >/dev/null; }
  [ -x target/release/order ] && [ -x target/release/examples/event_latency ] ||
    cargo build --release --bins --example event_latency --quiet
  exec bash bench/events.sh "$duration" "$connections" "$threads"
fi

if [ "$1" = --netloss ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "packet-loss run skipped: scripts/netfault.sh needs root"
    exit 0
  fi
  # Release build like the other rows (PROFILE=debug for a quick try: netfault.sh builds what is missing).
  PROFILE=${PROFILE:-release} exec scripts/netfault.sh --bench-loss
fi

if [ "$1" = --resilience ]; then
  data_dir=$(mktemp -d)
  pids=()
  cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$data_dir"
  }
  trap cleanup EXIT
  export HOST=127.0.0.1 RUST_LOG=error DATA_DIR=$data_dir
  ready() { for _ in $(seq 1 200); do curl -fs "http://127.0.0.1:$1/health/ready" >/dev/null && return; sleep 0.05; done; }
  start_inventory() { # [chaos delay ms]
    env PORT=27101 INVENTORY_CATALOG=bench/inventory-catalog.json RESERVATION_TTL_MS=3000 \
      ${1:+CHAOS_DELAY_RATE=1 CHAOS_DELAY_MS=$1} target/release/inventory &
    inventory_pid=$!
    pids+=("$inventory_pid")
    ready 27101
  }
  start_pricing() { PORT=27103 target/release/pricing & pricing_pid=$!; pids+=("$pricing_pid"); ready 27103; }
  start_inventory
  start_pricing
  PORT=27102 INVENTORY_URL=http://127.0.0.1:27101 PRICING_URL=http://127.0.0.1:27103 \
    REQUEST_TIMEOUT_MS=300 BREAKER_FAILURE_THRESHOLD=5 BREAKER_RESET_TIMEOUT_MS=3000 RESERVATION_TTL_MS=3000 \
    target/release/order & pids+=($!)
  ready 27102
  initial=$(curl -fs http://127.0.0.1:27101/items/A002 | jq .stock)

  python3 bench/resilience.py http://127.0.0.1:27102 100 60 "$data_dir/orders.csv" &
  load=$!
  sleep 10; kill "$pricing_pid"; echo "  10 s: pricing killed"
  sleep 15; start_pricing; echo "  25 s: pricing started again"
  sleep 10; kill "$inventory_pid"; wait "$inventory_pid" 2>/dev/null || true
  start_inventory 400; echo "  35 s: inventory restarted, answering after 400 ms (timeout 300 ms)"
  sleep 10; kill "$inventory_pid"; wait "$inventory_pid" 2>/dev/null || true
  start_inventory; echo "  45 s: inventory back to normal"
  wait "$load"
  # Reservations whose compensating release timed out too (inventory was slow)
  # expire after RESERVATION_TTL_MS (3 s) and give their stock back.
  sleep 5

  metrics=$(curl -fs http://127.0.0.1:27102/metrics)
  left=$(curl -fs http://127.0.0.1:27101/items/A002 | jq .stock)
  held=$(python3 - "$data_dir/order.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
(held,) = db.execute(
    "SELECT COALESCE(SUM(json_extract(l.value, '$.quantity')), 0) "
    "FROM orders o, json_each(o.lines) l "
    "WHERE o.status IN ('confirmed', 'pending_pricing') AND json_extract(l.value, '$.sku') = 'A002'"
).fetchone()
print(held)
PY
)
  # Two passes: the first finds when orders succeed again after inventory's spell
  # (its breaker closed after a successful trial call); 5xx from the kill until
  # then are the outage, every other 5xx counts against the service.
  awk -F, -v initial="$initial" -v left="$left" -v held="$held" -v metrics="$metrics" '
    NR == FNR { if ($1 >= 45 && ($3 == 200 || $3 == 201) && !back) back = $1; next }
    function p99(arr, n,   i, j, t) {
      if (n == 0) return 0
      for (i = 2; i <= n; i++) { t = arr[i]; for (j = i - 1; j >= 1 && arr[j] > t; j--) arr[j + 1] = arr[j]; arr[j + 1] = t }
      return arr[int(n * 0.99 + 0.999) > n ? n : int(n * 0.99 + 0.999)]
    }
    {
      phase = ($1 < 10) ? "steady" : ($1 < 25) ? "pricing_down" : ($1 < 35) ? "recovered" : ($1 < 46) ? "inventory_slow" : "steady_again"
      unreachable = ($1 >= 34.5 && $1 < back)
      n[phase]++; lat[phase, n[phase]] = $2
      if ($3 >= 500 && !unreachable) { errors++; if (!first) first = $1; last = $1 }
      if ($3 >= 500) all5xx++
      if ($4 == "fallback") fallback++
      if ($3 == 200 || $3 == 201) ok++
      total++
    }
    END {
      printf "resilience: %d orders at 100/s, %d placed, %d fallback (%.1f%%), 5xx %d in all, %d while inventory was reachable\n", total, ok, fallback, ok ? 100 * fallback / ok : 0, all5xx, errors
      split("steady pricing_down recovered inventory_slow steady_again", phases, " ")
      for (k = 1; k <= 5; k++) {
        ph = phases[k]; m = n[ph]; delete a
        for (i = 1; i <= m; i++) a[i] = lat[ph, i]
        printf "  p99 %-15s %8.1f ms  (%d orders)\n", ph, p99(a, m), m
      }
      c = split(metrics, lines, "\n")
      for (i = 1; i <= c; i++) if (lines[i] ~ /^circuit_breaker_transitions_total/) printf "  %s\n", lines[i]
      status = (initial == left + held) ? "conserved" : "NOT CONSERVED"
      printf "  stock: initial %d = left %d + held by placed orders %d: %s\n", initial, left, held, status
      if (errors > 0 || status != "conserved") exit 1
    }' "$data_dir/orders.csv" "$data_dir/orders.csv"
  exit
fi

# --store STORE: one run against one store (inside with-postgres.sh for postgres).
store=$2
data_dir=$(mktemp -d)
pids=()
cleanup() {
  [ ${#pids[@]} -gt 0 ] && kill "${pids[@]}" 2>/dev/null
  wait 2>/dev/null || true
  rm -rf "$data_dir"
}
trap cleanup EXIT

inventory_db="sqlite://$data_dir/inventory.db"
order_db="sqlite://$data_dir/order.db"
if [ "$store" = postgres ]; then
  createdb bench_inventory
  createdb bench_order
  base="postgres://$PGUSER@127.0.0.1:$PGPORT"
  inventory_db="$base/bench_inventory"
  order_db="$base/bench_order"
fi

export HOST=127.0.0.1 RUST_LOG=warn
PORT=27001 DATABASE_URL=$inventory_db INVENTORY_CATALOG=bench/inventory-catalog.json \
  target/release/inventory & pids+=($!)
PORT=27003 target/release/pricing & pids+=($!)
PORT=27002 DATABASE_URL=$order_db INVENTORY_URL=http://127.0.0.1:27001 \
  PRICING_URL=http://127.0.0.1:27003 target/release/order & pids+=($!)
for port in 27001 27002 27003; do
  for _ in $(seq 1 200); do
    curl -fs "http://127.0.0.1:$port/health/ready" >/dev/null && break
    sleep 0.05
  done
done

# wrk's latency figures come as 1.23us / 4.56ms / 1.2s: print them in ms.
to_ms() { awk '{v=$1; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; printf "%.2f", v}'; }

measure() { # label, url, [lua script]
  local label=$1 url=$2 script=${3:-}
  local out
  out=$(wrk -t"$threads" -c"$connections" -d"$duration" --latency ${script:+-s "$script"} "$url")
  local rps p50 p99 errors
  rps=$(awk '/Requests\/sec/ {printf "%.0f", $2}' <<<"$out")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$out" | to_ms)
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out" | to_ms)
  errors=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
  printf '%-10s %-22s %10s %9s %9s %8s\n' "$store" "$label" "$rps" "$p50" "$p99" "${errors:-0}"
}

measure "GET /items/{sku}" http://127.0.0.1:27001/items/A001
measure "GET /price/{sku}" http://127.0.0.1:27003/price/A001
measure "POST /price/bulk" http://127.0.0.1:27003/price/bulk bench/post-bulk.lua
measure "POST /orders" http://127.0.0.1:27002/orders bench/post-order.lua

# A steady rate rather than as fast as it goes: oha sends on a fixed schedule
# (one request every millisecond at 1,000/s, whatever the answers' pace) and,
# with --latency-correction, counts each latency from the moment the request was
# due, so a stall is charged to every request it delayed (no coordinated
# omission). Up to 100 requests in flight.
steady() { # label, rate
  local out rps p50 p99 errors
  out=$(.cache/oha/bin/oha -z "$duration" -q "$2" -c 100 --latency-correction --no-tui \
    --output-format json -m POST -T application/json \
    -d '{"customer_id": "bench", "items": [{"sku": "A002", "quantity": 1}]}' http://127.0.0.1:27002/orders)
  rps=$(jq -r '.summary.requestsPerSec | round' <<<"$out")
  p50=$(jq -r '.latencyPercentiles.p50 * 1000 * 100 | round / 100' <<<"$out")
  p99=$(jq -r '.latencyPercentiles.p99 * 1000 * 100 | round / 100' <<<"$out")
  errors=$(jq -r '[.statusCodeDistribution | to_entries[] | select(.key | startswith("2") | not) | .value] | add // 0' <<<"$out")
  # Requests still in flight when the run ends are "aborted due to deadline": not failures.
  errors=$((errors + $(jq -r '[.errorDistribution | to_entries[] | select(.key != "aborted due to deadline") | .value] | add // 0' <<<"$out")))
  printf '%-10s %-22s %10s %9s %9s %8s\n' "$store" "$1" "$rps" "$p50" "$p99" "$errors"
}
steady "POST /orders @1000/s" 1000

# The yardstick (order/examples/baseline.rs): bare actix-web handlers, one a
# fixed item, one making the order flow's two downstream calls (a reservation,
# a bulk quote) against the same inventory and pricing, and nothing else.
if [ "$store" = sqlite ]; then
  PORT=27004 INVENTORY_URL=http://127.0.0.1:27001 PRICING_URL=http://127.0.0.1:27003 \
    target/release/examples/baseline & pids+=($!)
  for _ in $(seq 1 100); do curl -fs http://127.0.0.1:27004/items/A001 >/dev/null && break; sleep 0.05; done
  store=bare
  measure "GET /items/{sku}" http://127.0.0.1:27004/items/A001
  measure "POST /orders" http://127.0.0.1:27004/orders bench/post-order.lua
  store=sqlite
fi

rss() { awk '/VmHWM/ {printf "%.1f MB", $2/1024}' "/proc/$1/status"; }
printf '%-10s peak RSS: inventory %s, pricing %s, order %s\n' "$store" \
  "$(rss "${pids[0]}")" "$(rss "${pids[1]}")" "$(rss "${pids[2]}")"
