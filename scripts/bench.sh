#!/usr/bin/env bash
# Throughput and latency of the services, release build, chaos off, a benchmark
# catalogue with ample stock, wrk (Debian) on the same machine as the services.
# Prints one table: rps, p50, p99, non-2xx answers, and each service's peak RSS.
# Not part of the test suite: figures depend on the machine.
#
#   scripts/bench.sh                 # SQLite, then PostgreSQL (throwaway cluster)
#   STORES=sqlite scripts/bench.sh   # one store only
#   DURATION=10s CONNECTIONS=32 THREADS=2 scripts/bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."

duration=${DURATION:-10s}
connections=${CONNECTIONS:-32}
threads=${THREADS:-2}
stores=${STORES:-sqlite postgres}

if [ "${1:-}" != --store ]; then
  need=()
  command -v wrk >/dev/null || need+=(wrk)
  if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
  fi
  echo "Building (release)..."
  cargo build --release --bins --quiet
  printf '%-10s %-22s %10s %9s %9s %8s\n' store endpoint rps p50_ms p99_ms non_2xx
  for store in $stores; do
    if [ "$store" = postgres ]; then
      scripts/with-postgres.sh bash "$0" --store postgres
    else
      bash "$0" --store sqlite
    fi
  done
  exit 0
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
PORT=47001 DATABASE_URL=$inventory_db INVENTORY_CATALOG=bench/inventory-catalog.json \
  target/release/inventory & pids+=($!)
PORT=47003 target/release/pricing & pids+=($!)
PORT=47002 DATABASE_URL=$order_db INVENTORY_URL=http://127.0.0.1:47001 \
  PRICING_URL=http://127.0.0.1:47003 target/release/order & pids+=($!)
for port in 47001 47002 47003; do
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

measure "GET /items/{sku}" http://127.0.0.1:47001/items/A001
measure "GET /price/{sku}" http://127.0.0.1:47003/price/A001
measure "POST /price/bulk" http://127.0.0.1:47003/price/bulk bench/post-bulk.lua
measure "POST /orders" http://127.0.0.1:47002/orders bench/post-order.lua

rss() { awk '/VmHWM/ {printf "%.1f MB", $2/1024}' "/proc/$1/status"; }
printf '%-10s peak RSS: inventory %s, pricing %s, order %s\n' "$store" \
  "$(rss "${pids[0]}")" "$(rss "${pids[1]}")" "$(rss "${pids[2]}")"
