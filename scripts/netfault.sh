#!/usr/bin/env bash
# Real network faults (issue 16): inventory, pricing and order run in network
# namespaces of their own, joined by veth pairs to a bridge in another namespace
# (nothing touches the host's network: every interface, address, qdisc and
# iptables rule lives in a namespace this script creates and deletes). While a
# bounded order load runs from a client namespace, packet-level faults are put
# on a service's link, one at a time, then cleared; after each, once the
# reservation TTL has passed, the invariants are checked through the services'
# own APIs (plus a read-only look at the order store for duplicate keys):
#
#   oversold   no item's stock negative; units in placed orders never above the initial stock
#   conserved  initial stock = current stock + units in placed (confirmed, pending_pricing) orders
#   idem       each Idempotency-Key one order (answers and store agree)
#   final      no order left `pending` after the reservation TTL
#   no5xx      no 5xx answered while inventory was reachable (faults that leave it reachable)
#
# Faults (on the named service's veth, egress, inside its namespace):
#   baseline       none (5 s): the harness itself
#   inv-latency    inventory: delay 150 ms +/- 100 ms (jitter reorders too)
#   inv-loss       inventory: 30 % packet loss
#   inv-reorder    inventory: delay 40 ms, 50 % of packets sent at once (reordering)
#   pricing-slow   pricing: delay 1500 ms +/- 1000 ms, 20 % loss (orders fall back to last prices)
#   partition      iptables: order <-> inventory dropped both ways
#   drop-requests  iptables: order -> inventory dropped (one way: requests never arrive)
#   drop-replies   iptables: inventory -> order dropped except SYN-ACKs (requests land, answers are lost)
#   selftest       not a fault and not run by default: adds one unit of A002 behind the
#                  checks' back, so `conserved` must FAIL and the script exit 1
#
# Delay, jitter and reordering use `tc qdisc ... netem` where the kernel has it;
# kernels built without sch_netem (CONFIG_NET_SCH_NETEM unset, as on this
# project's CI machine) get the same faults from scripts/netfault/nfq.py, an
# NFQUEUE program that holds each packet, and loss from `iptables -m statistic`.
# NETFAULT_EMULATION=netem|nfqueue forces one.
#
#   sudo scripts/netfault.sh                       # every fault, prints the table
#   NETFAULT_ONLY=partition,drop-replies scripts/netfault.sh
#   NETFAULT_WINDOW=20 NETFAULT_RATE=20 scripts/netfault.sh
#   scripts/netfault.sh --bench-loss               # the bench row: inventory at 50 % loss,
#                                                  # retries on vs off (scripts/bench.sh --netloss)
#
# Settings: NETFAULT_WINDOW (s each fault lasts, default 20), NETFAULT_RATE (orders/s,
# default 20), NETFAULT_TTL_MS (inventory's RESERVATION_TTL_MS, default 3000), PROFILE
# (debug|release, default debug: target/debug as `cargo test --workspace` builds it),
# NETFAULT_KEEP=1 (keep the services' logs and the per-request results),
# NETFAULT_BENCH_SECONDS (each half of --bench-loss, default 30), BIN_DIR and BUILD=no
# (scripts/lib/stack.sh, which starts and stops the services: the binaries, and no build).
# Exit: 0 all invariants hold, 1 an invariant failed, 2 it could not run, 77 not root.
set -Eeuo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "netfault: needs root (network namespaces, tc, iptables): not run" >&2
  exit 77
fi
# Debian's iptables is the nf_tables flavour (iptables-nft): it talks to the kernel
# itself and needs no `nft` command.
. scripts/lib/need.sh
. scripts/lib/stack.sh
need ip:iproute2 tc:iproute2 iptables:iptables python3:python3 curl:curl || exit 2

mode=${1:-faults}
window=${NETFAULT_WINDOW:-20}
rate=${NETFAULT_RATE:-20}
ttl_ms=${NETFAULT_TTL_MS:-3000}
STACK_BIN_DIR=$(stack_bin_dir debug)
bin=$STACK_BIN_DIR
shop=scripts/netfault/shop.py
if [ ! -x "$bin/inventory" ] || [ ! -x "$bin/order" ] || [ ! -x "$bin/pricing" ]; then
  release=(); [ "${PROFILE:-debug}" = release ] && release=(--release)
  stack_build "netfault: building the services ($bin)" "${release[@]}" -p inventory -p pricing -p order --bins --quiet || exit 2
fi

prefix="nf$$"
net=10.250.16
declare -A addr=([inv]=$net.11 [ord]=$net.12 [pri]=$net.13 [cli]=$net.20)
work=$(mktemp -d /tmp/netfault.XXXXXX)
namespaces=()
pids=()

cleanup() {
  local status=$?
  set +e
  trap - EXIT INT TERM ERR
  if [ "$status" -eq 1 ] || [ "$status" -eq 2 ]; then
    for log in "$work"/*.log; do
      [ -s "$log" ] && { echo "-- last lines of $(basename "$log") --"; tail -n 15 "$log"; }
    done
  fi
  [ ${#pids[@]} -gt 0 ] && kill "${pids[@]}" 2>/dev/null
  stack_stop_all
  # Anything else still running in our namespaces (started from them by us).
  for ns in "${namespaces[@]}"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill "$pid" 2>/dev/null; done
  done
  wait 2>/dev/null
  for ns in "${namespaces[@]}"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
    ip netns del "$ns" 2>/dev/null
  done
  if [ -n "${NETFAULT_KEEP:-}" ]; then echo "netfault: logs and results kept in $work"; else rm -rf "$work"; fi
  exit "$status"
}
trap cleanup EXIT
# Any command failing (outside an invariant check) means it could not run: 2.
trap 'echo "netfault: failed at line $LINENO: $BASH_COMMAND" >&2; exit 2' ERR
trap 'echo "netfault: interrupted" >&2; exit 130' INT
trap 'exit 143' TERM

# Not for commands run in the background: `fn &` forks a shell whose pid is not
# the command's (background commands call `ip netns exec` themselves).
in_ns() { local who=$1; shift; ip netns exec "$prefix-$who" "$@"; }
new_ns() { ip netns add "$1"; namespaces+=("$1"); ip -n "$1" link set lo up; }

# The bridge namespace holds br0 and one end of each veth; each service's
# namespace holds the other end, named eth0, with its address.
setup_network() {
  new_ns "$prefix-br"
  ip -n "$prefix-br" link add br0 type bridge
  ip -n "$prefix-br" link set br0 up
  for who in inv pri ord cli; do
    new_ns "$prefix-$who"
    ip -n "$prefix-br" link add "v-$who" type veth peer name eth0 netns "$prefix-$who"
    ip -n "$prefix-br" link set "v-$who" master br0 up
    ip -n "$prefix-$who" addr add "${addr[$who]}/24" dev eth0
    ip -n "$prefix-$who" link set eth0 up
  done
  case ${NETFAULT_EMULATION:-auto} in
    netem) have_netem=true ;;
    nfqueue) have_netem=false ;;
    *)
      have_netem=false
      if in_ns cli tc qdisc add dev eth0 root netem delay 1ms 2>/dev/null; then
        have_netem=true
        in_ns cli tc qdisc del dev eth0 root
      fi
      ;;
  esac
  $have_netem && emulation="tc netem" || emulation="NFQUEUE (scripts/netfault/nfq.py) + iptables statistic"
  echo "netfault: namespaces $prefix-{br,inv,pri,ord,cli}, $net.0/24, faults by $emulation"
}

# Settings every service gets: embedded SQLite in its own directory, nothing
# from the caller's environment that would point it elsewhere, chaos off.
service_env=(-u DATABASE_URL -u NATS_URL -u AUTH_ISSUER -u AUTH_REQUIRED -u SERVICE_TOKEN
  -u CHAOS_CONTROL HOST=0.0.0.0 RUST_LOG=warn LOG_FORMAT=text
  CHAOS_DELAY_RATE=0 CHAOS_FAILURE_RATE=0 RESERVATION_TTL_MS="$ttl_ms")

# Each service runs in its own namespace (STACK_WRAP) and is probed from the client's.
ready() { # service who port
  STACK_PROBE="ip netns exec $prefix-cli" stack_ready "$1" "http://${addr[$2]}:$3/health/ready" 60 || exit 2
}

start_services() {
  mkdir -p "$work/inv" "$work/pri" "$work/ord"
  STACK_WRAP="ip netns exec $prefix-inv" stack_service inventory "$work/inventory.log" "${service_env[@]}" \
    PORT=7001 DATA_DIR="$work/inv" INVENTORY_CATALOG=scripts/netfault/inventory-catalog.json
  ready inventory inv 7001
  STACK_WRAP="ip netns exec $prefix-pri" stack_service pricing "$work/pricing.log" "${service_env[@]}" \
    PORT=7003 DATA_DIR="$work/pri"
  ready pricing pri 7003
  start_order
}

# The breaker's reset time is short so that a fault's aftermath does not spill
# into the next fault's window. An order's deadline stays below the reservation
# TTL, as in production (5 s against 60 s): the short TTL here would otherwise
# let a reservation expire while a slow price quote still had time.
start_order() { # [extra VAR=value ...]
  STACK_WRAP="ip netns exec $prefix-ord" stack_service -a order "$work/order.log" "${service_env[@]}" \
    PORT=7002 DATA_DIR="$work/ord" \
    INVENTORY_URL="http://${addr[inv]}:7001" PRICING_URL="http://${addr[pri]}:7003" \
    BREAKER_RESET_TIMEOUT_MS=1000 ORDER_DEADLINE_MS=$((ttl_ms * 9 / 10)) "$@"
  order_pid=$STACK_PID
  ready order ord 7002
}

stop_order() {
  stack_stop "$order_pid"
}

netem() { # who delay_ms jitter_ms loss_percent reorder_percent
  local who=$1 delay=$2 jitter=$3 loss=$4 reorder=$5
  if $have_netem; then
    local args=()
    [ "$delay" -gt 0 ] && args+=(delay "${delay}ms" "${jitter}ms")
    [ "$loss" -gt 0 ] && args+=(loss "$loss%")
    [ "$reorder" -gt 0 ] && args+=(reorder "$reorder%")
    in_ns "$who" tc qdisc add dev eth0 root netem "${args[@]}"
    return
  fi
  if [ "$loss" -gt 0 ]; then
    in_ns "$who" iptables -A OUTPUT -o eth0 -m statistic --mode random \
      --probability "$(awk -v p="$loss" 'BEGIN { printf "%.2f", p / 100 }')" -j DROP
  fi
  if [ "$delay" -gt 0 ]; then
    rm -f "$work/nfq.ready"
    ip netns exec "$prefix-$who" python3 scripts/netfault/nfq.py --queue 0 --delay-ms "$delay" --jitter-ms "$jitter" \
      --reorder "$(awk -v p="$reorder" 'BEGIN { printf "%.2f", p / 100 }')" --ready "$work/nfq.ready" \
      >>"$work/nfq.log" 2>&1 &
    nfq_pid=$!
    pids+=("$nfq_pid")
    for _ in $(seq 1 100); do [ -e "$work/nfq.ready" ] && break; sleep 0.05; done
    [ -e "$work/nfq.ready" ] || { echo "netfault: nfq.py did not bind its queue" >&2; exit 2; }
    in_ns "$who" iptables -A OUTPUT -o eth0 -j NFQUEUE --queue-num 0 --queue-bypass
  fi
}

# Fault name -> whether inventory stays reachable (the no5xx invariant applies).
declare -A reachable=([baseline]=yes [inv-latency]=yes [inv-loss]=no [inv-reorder]=yes
  [pricing-slow]=yes [partition]=no [drop-requests]=no [drop-replies]=no [selftest]=yes)
all_faults="baseline inv-latency inv-loss inv-reorder pricing-slow partition drop-requests drop-replies"

apply_fault() {
  case $1 in
    baseline) ;;
    inv-latency) netem inv 150 100 0 0 ;;
    inv-loss) netem inv 0 0 30 0 ;;
    inv-reorder) netem inv 40 0 0 50 ;;
    pricing-slow) netem pri 1500 1000 20 0 ;;
    partition)
      in_ns ord iptables -A OUTPUT -d "${addr[inv]}" -j DROP
      in_ns ord iptables -A INPUT -s "${addr[inv]}" -j DROP
      ;;
    drop-requests) in_ns ord iptables -A OUTPUT -d "${addr[inv]}" -j DROP ;;
    selftest)
      in_ns cli curl -fs -o /dev/null -X POST -H 'Content-Type: application/json' \
        -d '{"delta": 1, "reason": "netfault self-test"}' "http://${addr[inv]}:7001/items/A002/stock" ;;
    drop-replies)
      in_ns inv iptables -A OUTPUT -d "${addr[ord]}" -p tcp --tcp-flags SYN NONE -j DROP ;;
    *) echo "netfault: unknown fault $1" >&2; exit 2 ;;
  esac
}

clear_faults() {
  for who in inv pri ord; do
    in_ns "$who" tc qdisc del dev eth0 root 2>/dev/null || true
    in_ns "$who" iptables -F
  done
  if [ -n "${nfq_pid:-}" ]; then
    kill "$nfq_pid" 2>/dev/null || true
    wait "$nfq_pid" 2>/dev/null || true
    nfq_pid=
  fi
}

run_fault() { # name
  local fault=$1 secs=$window
  [ "$fault" = baseline ] && secs=5
  customers+=",nf-$fault"
  apply_fault "$fault"
  ip netns exec "$prefix-cli" python3 "$shop" load "http://${addr[ord]}:7002" "$rate" "$secs" "nf-$fault" "$work/$fault.jsonl" &
  local load=$!
  pids+=("$load")
  sleep "$secs"
  clear_faults
  wait "$load"
  # Back to normal (breakers closed), then the reservations of failed orders
  # expire (TTL) and the sweeps run (inventory's and order's, every TTL/2).
  in_ns cli python3 "$shop" probe "http://${addr[ord]}:7002" 30 || true
  sleep "$(awk -v t="$ttl_ms" 'BEGIN { printf "%.1f", t / 1000 * 1.5 + 1 }')"
  in_ns cli python3 "$shop" check --inventory "http://${addr[inv]}:7001" --order "http://${addr[ord]}:7002" \
    --fault "$fault" --window "$secs" --customer "nf-$fault" --customers "$customers" \
    --results "$work/$fault.jsonl" --initial "$work/initial.json" \
    --inventory-reachable "${reachable[$fault]}" --db "$work/ord/order.db" --rows "$work/rows.jsonl"
}

setup_network
start_services
in_ns cli python3 "$shop" stock "http://${addr[inv]}:7001" "$work/initial.json"
customers=nf-probe

if [ "$mode" = --bench-loss ]; then
  # The bench row: inventory at 50 % packet loss, the same load with the order
  # service's retries on (its defaults) and off (RETRY_MAX_ATTEMPTS=1).
  secs=${NETFAULT_BENCH_SECONDS:-30}
  netem inv 0 0 50 0
  for retries in on off; do
    if [ "$retries" = off ]; then stop_order; start_order RETRY_MAX_ATTEMPTS=1; fi
    in_ns cli python3 "$shop" load "http://${addr[ord]}:7002" "$rate" "$secs" "nf-bench-$retries" \
      "$work/bench-$retries.jsonl" --plain
    python3 - "$work/bench-$retries.jsonl" "$retries" "$rate" "$secs" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
ok = sum(200 <= r["status"] < 300 for r in rows)
ms = sorted(r["ms"] for r in rows if r["status"])
p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))] if ms else 0
print("inventory 50%% loss, retries %-3s: %4d orders at %s/s for %s s, %4d placed (%5.1f%%), 5xx %d, timeouts %d, p99 %.0f ms"
      % (sys.argv[2], len(rows), sys.argv[3], sys.argv[4], ok, 100 * ok / max(1, len(rows)),
         sum(r["status"] >= 500 for r in rows), sum(r["status"] == 0 for r in rows), p99))
PY
  done
  exit 0
fi

faults=${NETFAULT_ONLY:-$all_faults}
faults=${faults//,/ }
echo "netfault: $rate orders/s, ${window} s per fault, reservation TTL ${ttl_ms} ms"
PYTHONDONTWRITEBYTECODE=1 python3 - <<'PY'
import sys
sys.path.insert(0, "scripts/netfault")
import shop
shop.print_table([], header=True)
PY
for fault in $faults; do
  [ -n "${reachable[$fault]:-}" ] || { echo "netfault: unknown fault $fault (known: $all_faults)" >&2; exit 2; }
  run_fault "$fault"
done
echo
python3 "$shop" table "$work/rows.jsonl" || exit 1
