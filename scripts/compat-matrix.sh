#!/usr/bin/env bash
# Mixed versions: the shop with one service at the last release (the commit
# compat/baseline names) and the others at HEAD, as during a rolling update, for each of
# inventory, pricing, order and identity in turn; then HEAD's order against the
# baseline's inventory and pricing together.
#
# For each combination, two local stacks (scripts/run-local.sh, events on with its own
# nats-server, chaos off; the baseline's binary by *_BIN_DIR):
#   - tokens required (AUTH=on): the access-control journey (scripts/journey.sh), then the
#     events across versions: the journey's two price changes reach order's `order-prices`
#     consumer, and a reservation left to expire (RESERVATION_TTL_MS=3000, reserved with
#     order's client credentials) reaches its `order-expiries` consumer, each handled
#     (events_consumed_total{outcome="handled"} on order's /metrics) and none dead-lettered;
#   - tokens not required: the seed's curl commands (scripts/seed-commands.sh).
# Failed requests are the steps of both that did not get the contract's answer; server
# errors are the 5xx answers the four services counted (http_requests_total).
#
# Ends with a table: combination, journey, seed commands, events, failed requests, server
# errors. Exit 1 when any combination failed.
#
# The baseline's binaries come from scripts/lib/baseline.sh (built by scripts/compat.sh
# earlier in the same run, else built here); HEAD's are BIN_DIR, else built in debug.
# Settings (environment): BIN_DIR, NATS_SERVER_BIN (scripts/lib/stack.sh),
# MATRIX_KEEP_LOGS=1 (keep the stacks' logs; their folder is printed).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/need.sh
. scripts/lib/baseline.sh

section() { printf '\n== %s ==\n' "$*"; }
started=$SECONDS

need git:git curl:curl jq:jq python3:python3
[ -n "${NATS_SERVER_BIN:-}" ] || need nats-server:nats-server
NATS_SERVER_BIN=${NATS_SERVER_BIN:-$(have nats-server)}
export NATS_SERVER_BIN

target_dir=$(cargo metadata --format-version 1 --no-deps --offline | jq -r .target_directory)
section "the binaries"
baseline_binaries "$target_dir"
head_bin=${BIN_DIR:-$target_dir/debug}
if [ -z "${BIN_DIR:-}" ]; then
  # Also links target/debug back to HEAD's binaries after a baseline build.
  echo "building HEAD's services (debug)"
  cargo build --bins --quiet
fi

work=$(mktemp -d)
stack=
stop_stack() {
  if [ -n "$stack" ]; then
    kill "$stack" 2>/dev/null || true
    wait "$stack" 2>/dev/null || true
  fi
  stack=
}
cleanup() {
  stop_stack
  if [ "${MATRIX_KEEP_LOGS:-}" = 1 ]; then echo "logs kept in $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# start_stack NAME ENV...: scripts/run-local.sh under ENV on free ports, waited for; sets
# stack (its pid) and the services' URLs.
start_stack() {
  local name=$1 log
  shift
  local ports=()
  for _ in 1 2 3 4 5 6; do ports+=("$(free_port)"); done
  inventory=http://127.0.0.1:${ports[0]} order=http://127.0.0.1:${ports[1]}
  pricing=http://127.0.0.1:${ports[2]} identity=http://127.0.0.1:${ports[3]}
  mkdir -p "$work/$name"
  log=$work/$name/stack.log
  env "$@" PROFILE=debug BUILD=no BIN_DIR="$head_bin" DEMO_CHAOS=off DATA_DIR="$work/$name/data" \
    INVENTORY_PORT="${ports[0]}" ORDER_PORT="${ports[1]}" PRICING_PORT="${ports[2]}" IDENTITY_PORT="${ports[3]}" \
    CLIENT_PORT="${ports[4]}" NATS_PORT="${ports[5]}" scripts/run-local.sh >"$log" 2>&1 &
  stack=$!
  for _ in $(seq 1 600); do
    grep -q "Ctrl-C stops everything" "$log" && return 0
    kill -0 "$stack" 2>/dev/null || break
    sleep 0.2
  done
  echo "the stack ($name) did not start:" >&2
  tail -n 40 "$log" >&2
  stop_stack
  return 1
}

# metric URL NAME LABEL...: the sum of NAME's samples on URL/metrics whose labels include
# every LABEL (e.g. 'status="5'), 0 when there are none.
metric() {
  local url=$1 name=$2
  shift 2
  curl -fsS --max-time 5 "$url/metrics" | awk -v name="$name" -v labels="$*" '
    index($0, name "{") == 1 || $1 == name {
      n = split(labels, want, " ")
      for (i = 1; i <= n; i++) if (index($0, want[i]) == 0) next
      sum += $NF
    }
    END { print sum + 0 }'
}

server_errors() {
  local total=0 url
  for url in "$inventory" "$order" "$pricing" "$identity"; do
    total=$((total + $(metric "$url" http_requests_total 'status="5')))
  done
  echo "$total"
}

# await_handled CONSUMER AT_LEAST: waits up to 15 s for order's consumer to have handled
# that many events.
await_handled() {
  local i
  for i in $(seq 1 75); do
    [ "$(handled "$1")" -ge "$2" ] && return 0
    sleep 0.2
  done
  return 1
}

handled() { metric "$order" events_consumed_total "consumer=\"$1\"" 'outcome="handled"'; }

# events_across PRICES_BEFORE: the journey's two price changes (order-prices had handled
# PRICES_BEFORE events before it) and one expired reservation reach order's consumers.
# Echoes what it found; false when something did not arrive.
events_across() {
  local token status ok=0 prices expiries dead expiries_before
  expiries_before=$(handled order-expiries)
  if await_handled order-prices $(($1 + 2)); then prices=ok; else prices=missing ok=1; fi
  token=$(curl -fsS --max-time 10 -u order:order-demo-secret -d grant_type=client_credentials \
    "$identity/token" | jq -r .access_token) || token=
  status=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -X POST "$inventory/reservations" \
    -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    -d "{\"reservation_id\":\"matrix-$RANDOM$RANDOM\",\"lines\":[{\"sku\":\"A003\",\"quantity\":1}]}")
  if [ "$status" != 201 ]; then
    expiries="not reserved (HTTP $status)" ok=1
  elif await_handled order-expiries $((expiries_before + 1)); then
    expiries=ok
  else
    expiries=missing ok=1
  fi
  dead=$(metric "$order" events_consumed_total 'outcome="dead_lettered"')
  [ "$dead" = 0 ] || ok=1
  echo "prices $prices, expiries $expiries, dead letters $dead"
  return $ok
}

# check_binaries ENV...: each service of the running stack runs the binary ENV's *_BIN_DIR
# names for it (else HEAD's); says which, or which not.
check_binaries() {
  local service upper dir want ran ok=0 at setting
  ran=$(for pid in $(ps -o pid= --ppid "$stack"); do readlink "/proc/$pid/exe" || true; done)
  for service in "${BASELINE_SERVICES[@]}"; do
    upper=$(echo "$service" | tr '[:lower:]' '[:upper:]')
    dir=$head_bin at=HEAD
    for setting in "$@"; do
      case $setting in "${upper}_BIN_DIR="*) dir=${setting#*=} at=baseline ;; esac
    done
    want=$(realpath "$dir/$service")
    if grep -qxF "$want" <<<"$ran"; then
      printf '%s at %s; ' "$service" "$at"
    else
      printf '%s NOT at %s (%s); ' "$service" "$at" "$want"
      ok=1
    fi
  done
  echo
  return $ok
}

# combination NAME ENV...: both stacks under ENV (the *_BIN_DIR of the services at the
# baseline); adds a row.
rows=()
failed=0
combination() {
  local name=$1 slug journey seed events fails=0 errors=0 steps row_ok=1 out single prices_before
  shift
  slug=$(echo "$name" | tr -c 'a-z0-9\n' '-')
  section "$name"

  if start_stack "$slug-auth" "$@" AUTH=on RESERVATION_TTL_MS=3000; then
    check_binaries "$@" || row_ok=0
    out=$work/$slug-auth/journey.out
    prices_before=$(handled order-prices)
    scripts/journey.sh "$identity" "$inventory" "$pricing" "$order" >"$out" 2>&1 || row_ok=0
    cat "$out"
    steps=$(grep -cE '^(ok|FAIL) ' "$out" || true)
    fails=$(grep -c '^FAIL ' "$out" || true)
    journey="$((steps - fails))/$steps steps"
    [ "$steps" -gt 0 ] || { journey="did not run" row_ok=0; }
    if events=$(events_across "$prices_before"); then :; else row_ok=0; fi
    echo "events: $events"
    single=$(metric "$order" order_single_confirms_total)
    [ "$single" = 0 ] || events="$events; confirms one by one ($single)"
    errors=$((errors + $(server_errors)))
    stop_stack
  else
    journey="stack did not start" events=- row_ok=0
  fi

  if start_stack "$slug-open" "$@" AUTH=off; then
    check_binaries "$@" || row_ok=0
    out=$work/$slug-open/seed.out
    scripts/seed-commands.sh "$inventory" "$order" "$pricing" >"$out" 2>&1 || row_ok=0
    cat "$out"
    steps=$(grep -cE '^(ok|FAIL) ' "$out" || true)
    fails=$((fails + $(grep -c '^FAIL ' "$out" || true)))
    seed="$((steps - $(grep -c '^FAIL ' "$out" || true)))/$steps"
    [ "$steps" -gt 0 ] || { seed="did not run" row_ok=0; }
    errors=$((errors + $(server_errors)))
    stop_stack
  else
    seed="stack did not start" row_ok=0
  fi

  [ "$errors" = 0 ] || row_ok=0
  local result=passed
  [ "$row_ok" = 1 ] || { result=FAILED failed=1; }
  rows+=("$name	$result: journey $journey, seed $seed	$fails	$errors	$events")
}

b=$BASELINE_BIN_DIR
combination "inventory at the baseline" INVENTORY_BIN_DIR="$b"
combination "pricing at the baseline" PRICING_BIN_DIR="$b"
combination "order at the baseline" ORDER_BIN_DIR="$b"
combination "identity at the baseline" IDENTITY_BIN_DIR="$b"
combination "inventory and pricing at the baseline" INVENTORY_BIN_DIR="$b" PRICING_BIN_DIR="$b"

section "mixed versions: HEAD with the baseline ${BASELINE_COMMIT:0:12} (compat/baseline)"
{
  printf 'combination\tresult\tfailed requests\tserver errors\tevents across versions\n'
  printf '%s\n' "${rows[@]}"
} | awk -F'\t' '{ printf "%-38s %-46s %-16s %-14s %s\n", $1, $2, $3, $4, $5 }'
echo "the others at HEAD; baseline build $BASELINE_BUILD_S s, total $((SECONDS - started)) s"
exit $failed
