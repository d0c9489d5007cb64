#!/usr/bin/env bash
# Throughput, latency and CPU cost of the services against the performance
# targets: release build, chaos off, a benchmark catalogue with ample stock, the
# load tools (wrk flat out; oha at a steady rate, from crates.io, built once into
# .cache/oha: about 7 minutes on 2 cores) on the same machine as the services.
# The measuring is bench/run.py (its docstring lists the rows): per store
#   - GET /items/{sku} against the bare yardstick's (order/examples/baseline.rs:
#     bare actix-web handlers, a fixed item; the order flow's two downstream calls
#     and nothing else), measured in the same run;
#   - POST /orders flat out (wrk), and at a steady 1,000/s three times (oha, latency
#     counted from when each request was due), with the CPU time per order of each
#     steady run (the services; on PostgreSQL also every server process);
#   - the same order rows with access control (identity, a customer's bearer token
#     on every order) and events (a real nats-server with JetStream) on, against a
#     fresh stack with both off;
#   - on PostgreSQL, a soak: 500 orders/s for SOAK_MINUTES, RSS and p99 per minute;
#   - GET /price/{sku}, POST /price/bulk and each service's peak RSS (info).
# It prints each row beside its target with PASS, MISS or info and writes the same
# to bench/results/latest.json (scripts/bench-readme.py puts it in the README).
# Then each service's time from process start to /health/ready on the embedded
# store (bench/startup.py), and the resilience, events and packet-loss runs.
# Not part of the test suite: figures depend on the machine.
#
#   scripts/bench.sh                 # SQLite, then PostgreSQL (throwaway cluster), then
#                                    # the resilience run (SQLite)
#   STORES=sqlite scripts/bench.sh   # one store only
#   SOAK=off SOAK_MINUTES=10         # skip the soak; its length
#   AUTH_EVENTS=off                  # skip the access-control-and-events rows
#   AUTH_EVENTS_ROUNDS=1             # off/on pairs taken in turns
#   BIN_DIR=target/release           # binaries measured; when set, nothing is built
#   RESILIENCE=off scripts/bench.sh  # skip the resilience run
#   EVENTS=off scripts/bench.sh      # skip the events run
#   scripts/bench.sh --events        # only the events run
#   BALANCER=off scripts/bench.sh    # skip the balancer run
#   scripts/bench.sh --balancer      # only the balancer run (bench/balancer.py: 3 inventory and
#                                    # 2 pricing replicas, p2c against round robin, 4 cases)
#   NETLOSS=off scripts/bench.sh     # skip the packet-loss run (it needs root; skipped otherwise)
#   scripts/bench.sh --netloss       # only the packet-loss run (PROFILE=debug: the debug build)
#   scripts/bench.sh --store sqlite  # one store's rows only (PostgreSQL: inside with-postgres.sh)
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
# (shared/events/examples/event_latency.rs) for the time from an event's commit to
# its delivery.
# The packet-loss run (root, Linux; scripts/netfault.sh --bench-loss) puts the
# services in network namespaces of their own, drops 50 % of inventory's outgoing
# packets (tc netem loss 50%, or iptables -m statistic where the kernel has no
# netem), and sends 20 single-unit orders/s for 30 s twice: with the order
# service's retries on (its defaults), then off (RETRY_MAX_ATTEMPTS=1); it prints
# the share of orders placed each time.
# Ports 27001-27010 (BENCH_PORT_BASE=27000 moves them) and 27101-27103 lie below
# Linux's ephemeral range (32768-60999), where outbound connections could already hold them.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/need.sh

duration=${DURATION:-10s}
connections=${CONNECTIONS:-32}
threads=${THREADS:-2}
stores=${STORES:-sqlite postgres}

export DURATION=$duration CONNECTIONS=$connections THREADS=$threads
export OHA=${OHA:-.cache/oha/bin/oha}

if [ -z "${1:-}" ]; then
  need wrk:wrk jq:jq
  [ "${AUTH_EVENTS:-on}${EVENTS:-on}" = offoff ] || need nats-server:nats-server
  if [ ! -x "$OHA" ]; then
    echo "Building oha (once)..."
    cargo install oha --version 1.16.0 --locked --quiet --root .cache/oha
  fi
  if [ -z "${BIN_DIR:-}" ]; then
    echo "Building (release)..."
    cargo build --release --bins --example baseline --example event_latency --quiet
  fi
  export BIN_DIR=${BIN_DIR:-target/release}
  parts=$(mktemp -d)
  trap 'rm -rf "$parts"' EXIT
  failed=0
  for store in $stores; do
    echo "== $store"
    if [ "$store" = postgres ]; then
      scripts/with-postgres.sh python3 bench/run.py store postgres "$parts" || failed=1
    else
      python3 bench/run.py store "$store" "$parts" || failed=1
    fi
  done
  echo
  python3 bench/run.py report "$parts" bench/results/latest.json
  [ "$failed" = 0 ] || { echo "a store's run failed: its rows are missing or partial" >&2; exit 1; }
  echo
  python3 bench/startup.py "$BIN_DIR" 5
  [ "${RESILIENCE:-on}" = off ] || { echo; bash "$0" --resilience; }
  [ "${EVENTS:-on}" = off ] || { echo; bash "$0" --events; }
  [ "${NETLOSS:-on}" = off ] || { echo; bash "$0" --netloss; }
  [ "${BALANCER:-on}" = off ] || { echo; bash "$0" --balancer; }
  exit 0
fi

if [ "$1" = --balancer ]; then
  [ -x "$OHA" ] || cargo install oha --version 1.16.0 --locked --quiet --root .cache/oha
  [ -n "${BIN_DIR:-}" ] || [ -x target/release/order ] || cargo build --release --bins --quiet
  exec python3 bench/balancer.py
fi

if [ "$1" = --events ]; then
  need nats-server:nats-server
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
  # The services are started and stopped by scripts/lib/stack.sh; their output goes
  # to this terminal (log -).
  . scripts/lib/stack.sh
  STACK_BIN_DIR=target/release
  data_dir=$(mktemp -d)
  cleanup() {
    stack_stop_all
    rm -rf "$data_dir"
  }
  trap cleanup EXIT
  export HOST=127.0.0.1 RUST_LOG=error DATA_DIR=$data_dir
  start_inventory() { # [chaos delay ms]
    stack_service inventory - PORT=27101 INVENTORY_CATALOG=bench/inventory-catalog.json RESERVATION_TTL_MS=3000 \
      ${1:+CHAOS_DELAY_RATE=1 CHAOS_DELAY_MS=$1}
    inventory_pid=$STACK_PID
    stack_ready inventory http://127.0.0.1:27101/health/ready || exit 1
  }
  start_pricing() {
    stack_service pricing - PORT=27103
    pricing_pid=$STACK_PID
    stack_ready pricing http://127.0.0.1:27103/health/ready || exit 1
  }
  start_inventory
  start_pricing
  stack_service order - PORT=27102 INVENTORY_URL=http://127.0.0.1:27101 PRICING_URL=http://127.0.0.1:27103 \
    REQUEST_TIMEOUT_MS=300 BREAKER_FAILURE_THRESHOLD=5 BREAKER_RESET_TIMEOUT_MS=3000 RESERVATION_TTL_MS=3000
  stack_ready order http://127.0.0.1:27102/health/ready || exit 1
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

# --store STORE: one store's rows (inside with-postgres.sh for postgres), printed as
# they are measured; bench/run.py report merges such parts into latest.json.
if [ "$1" = --store ]; then
  export BIN_DIR=${BIN_DIR:-target/release}
  parts=$(mktemp -d)
  trap 'rm -rf "$parts"' EXIT
  python3 bench/run.py store "${2:?sqlite or postgres}" "$parts"
  exit
fi
echo "unknown option $1 (see the top of $0)" >&2
exit 2
