#!/usr/bin/env bash
# Runs the whole system on this machine, no Docker: inventory :7001, order :7002,
# pricing :7003, identity :7004 on embedded SQLite (./data), and the web client on :8080.
# The seed's demo chaos is on (inventory delays ~10% of requests by 100-500 ms,
# pricing fails ~10%); DEMO_CHAOS=off turns it off. Live fault control is on
# (CHAOS_CONTROL=on: GET/PUT /admin/chaos on every service, the panel's "Slow inventory",
# "Break pricing" and "Heal all"; open unless AUTH=on or SERVICE_TOKEN is set, then it
# takes the operator's token or SERVICE_TOKEN); CHAOS_CONTROL=off removes it. Ctrl-C
# stops everything.
#
# AUTH=on turns access control on, with tokens required: the services trust
# identity's tokens, order gets its own by client credentials, and a demo
# operator (operator@shop.example / operator-demo-password) may restock and
# reprice. Demo credentials only: never reuse them anywhere real.
#
# Events (README "Events"): when nats-server is installed (Debian's `nats-server`, in
# /usr/sbin; or NATS_SERVER_BIN), a JetStream server is started on 127.0.0.1:$NATS_PORT
# (default 4222) with its store in $DATA_DIR/nats, stopped with the rest, and every
# service gets its NATS_URL. A NATS_URL already set is used as it is (no server
# started); EVENTS=off starts none and leaves events off. Without nats-server events are
# off, said in one line (the "events" line of the summary).
#
# Settings (environment): PROFILE (release|debug, default release), BIN_DIR (the
# binaries to run, default target/PROFILE), INVENTORY_BIN_DIR, ORDER_BIN_DIR,
# PRICING_BIN_DIR and IDENTITY_BIN_DIR (one service's binary from another folder, e.g. the
# last release's: scripts/compat-matrix.sh), BUILD=no (no cargo build first), DATA_DIR
# (default ./data), INVENTORY_PORT, ORDER_PORT, PRICING_PORT, IDENTITY_PORT, CLIENT_PORT,
# NATS_PORT, EVENTS, and any service variable from the README (RUST_LOG, LOG_FORMAT,
# SERVICE_TOKEN, EVENTS_*, ...).
# INVENTORY_DATABASE_URL, ORDER_DATABASE_URL, PRICING_DATABASE_URL and
# IDENTITY_DATABASE_URL each become that service's DATABASE_URL (e.g. PostgreSQL).
# Processes are started, waited for and stopped by scripts/lib/stack.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/stack.sh

profile=${PROFILE:-release}
inventory_port=${INVENTORY_PORT:-7001}
order_port=${ORDER_PORT:-7002}
pricing_port=${PRICING_PORT:-7003}
identity_port=${IDENTITY_PORT:-7004}
client_port=${CLIENT_PORT:-8080}
nats_port=${NATS_PORT:-4222}
export DATA_DIR=${DATA_DIR:-./data}
export HOST=${HOST:-127.0.0.1}
export CHAOS_CONTROL=${CHAOS_CONTROL:-on}

case "$profile" in
  dev | debug) profile=dev ;;
esac
STACK_BIN_DIR=$(stack_bin_dir "$profile")
# bin_dir SERVICE: the folder of SERVICE's binary (its *_BIN_DIR, else the others').
bin_dir() {
  local name
  name="$(echo "$1" | tr '[:lower:]' '[:upper:]')_BIN_DIR"
  echo "${!name:-$STACK_BIN_DIR}"
}
stack_build "Building ($profile)..." --profile "$profile" --bins --quiet

inventory_chaos=(CHAOS_DELAY_RATE=0.1 CHAOS_DELAY_MS=100-500)
pricing_chaos=(CHAOS_FAILURE_RATE=0.1)
if [ "${DEMO_CHAOS:-on}" = off ]; then
  inventory_chaos=()
  pricing_chaos=()
fi

# database SERVICE: that service's DATABASE_URL setting, if one was given.
database() {
  local name
  name="$(echo "$1" | tr '[:lower:]' '[:upper:]')_DATABASE_URL"
  [ -n "${!name:-}" ] && echo "DATABASE_URL=${!name}" || echo "UNUSED_DATABASE_URL="
}

identity_url="http://localhost:$identity_port"
identity_auth=() services_auth=() order_auth=()
if [ "${AUTH:-off}" = on ]; then
  identity_auth=(
    IDENTITY_OPERATORS=operator@shop.example
    'IDENTITY_ACCOUNTS=[{"email":"operator@shop.example","password":"operator-demo-password","name":"Demo operator"}]'
    'IDENTITY_CLIENTS=[{"client_id":"order","client_secret":"order-demo-secret","scopes":["inventory:reserve"]}]'
  )
  services_auth=(AUTH_ISSUER="$identity_url" AUTH_REQUIRED=true)
  order_auth=(AUTH_CLIENT_ID=order AUTH_CLIENT_SECRET=order-demo-secret)
fi

stop() {
  trap - INT TERM EXIT
  stack_stop_all
}
trap stop INT TERM EXIT

# Events: our own nats-server when there is one, unless NATS_URL names a broker already.
nats_server=$(stack_nats_server || true)
events=""
if [ "${EVENTS:-on}" = off ]; then
  unset NATS_URL
  events="off (EVENTS=off)"
elif [ -n "${NATS_URL:-}" ]; then
  events="on (NATS_URL from the environment)"
elif [ -n "$nats_server" ]; then
  if (exec 3<>"/dev/tcp/127.0.0.1/$nats_port") 2>/dev/null; then
    echo "port $nats_port is taken: set NATS_PORT, or NATS_URL to use the server there" >&2
    exit 1
  fi
  mkdir -p "$DATA_DIR/nats"
  stack_nats "$nats_port" "$DATA_DIR/nats" "$DATA_DIR/nats/server.log" \
    "nats-server (log: $DATA_DIR/nats/server.log)" || exit 1
  export NATS_URL=$STACK_NATS_URL
  events="on (nats-server on :$nats_port, JetStream store $DATA_DIR/nats)"
else
  unset NATS_URL
  events="off (no nats-server here: apt-get install nats-server, or set NATS_URL to a JetStream server)"
fi

# No signing key configured: identity generates one into $DATA_DIR (development only).
# The services' output goes to this terminal (log -).
STACK_BIN_DIR=$(bin_dir identity) stack_service identity - PORT="$identity_port" "$(database identity)" IDENTITY_ISSUER="$identity_url" "${identity_auth[@]}"
STACK_BIN_DIR=$(bin_dir inventory) stack_service inventory - PORT="$inventory_port" "$(database inventory)" "${inventory_chaos[@]}" "${services_auth[@]}"
STACK_BIN_DIR=$(bin_dir pricing) stack_service pricing - PORT="$pricing_port" "$(database pricing)" "${pricing_chaos[@]}" "${services_auth[@]}"
STACK_BIN_DIR=$(bin_dir order) stack_service order - PORT="$order_port" "$(database order)" "${services_auth[@]}" "${order_auth[@]}" \
  INVENTORY_URL="${INVENTORY_URL:-http://127.0.0.1:$inventory_port}" \
  PRICING_URL="${PRICING_URL:-http://127.0.0.1:$pricing_port}"
client_name="client (python3 -m http.server on :$client_port)"
if [ -d client ]; then
  # Its stdout (nothing) dropped, its request log (stderr) on this terminal.
  stack_start "$client_name" - sh -c 'exec "$@" >/dev/null' sh \
    python3 -m http.server "$client_port" --bind "$HOST" --directory client
fi

stack_ready inventory "http://127.0.0.1:$inventory_port/health/ready" || exit 1
stack_ready pricing "http://127.0.0.1:$pricing_port/health/ready" || exit 1
stack_ready order "http://127.0.0.1:$order_port/health/ready" || exit 1
stack_ready identity "http://127.0.0.1:$identity_port/health/ready" || exit 1
if [ -d client ]; then
  # Not fatal while it runs (checked just below): a slow start only waits 5 s.
  stack_ready "$client_name" "http://127.0.0.1:$client_port/" 5 2>/dev/null || true
fi
stack_running "did not start" || exit 1

cat <<MSG

  inventory  http://localhost:$inventory_port   (try: curl http://localhost:$inventory_port/items)
  order      http://localhost:$order_port
  pricing    http://localhost:$pricing_port
  identity   http://localhost:$identity_port   (try: curl http://localhost:$identity_port/.well-known/openid-configuration)
  client     http://localhost:$client_port
  data       $DATA_DIR   chaos: ${DEMO_CHAOS:-on}   chaos control: $CHAOS_CONTROL   auth: ${AUTH:-off}
  events     $events

Ctrl-C stops everything.
MSG

# Stop everything as soon as any one process exits.
wait -n "${STACK_PIDS[@]}" || true
stack_running "exited; stopping the rest" || true
exit 1
