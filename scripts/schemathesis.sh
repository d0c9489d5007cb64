#!/usr/bin/env bash
# Property-based API tests: schemathesis reads each service's GET /openapi.json,
# generates requests from it (valid and invalid ones, plus methods the document
# does not list) and checks every answer against the same document. Any finding
# fails the run: fix the service, not the check.
#
# It installs schemathesis from PyPI into a venv (.cache/, ignored by git), builds
# the services unless PROFILE's binaries are there already, and starts them on
# free ports on 127.0.0.1 with embedded SQLite in a temporary DATA_DIR, chaos off,
# inventory on bench/inventory-catalog.json (stock that does not run out), identity
# with a generated key in that DATA_DIR and one OAuth client holding every scope,
# and the other three requiring its tokens (AUTH_REQUIRED), so that `ignored_auth`
# checks every guarded route; schemathesis sends that client's token. Events are
# on (a nats-server with JetStream in the temporary folder: NATS_SERVER_BIN, else
# nats-server on the PATH), so the dead-letter routes answer as in production;
# the live feed (GET /events/stream) is left out: an endless stream has no end
# to check, and the order service's tests read it.
#
# Settings (environment): PROFILE (debug|release, default debug), MAX_EXAMPLES
# (per operation and phase, default 40), MAX_TIME (seconds per service, default
# 60), SEED (default 1, for runs that repeat; "random" for a new one each run),
# SCHEMATHESIS_VENV (default .cache/schemathesis), ONLY (a space list of services
# to run, default all four), BIN_DIR and BUILD=no (scripts/lib/stack.sh: the binaries
# to run, and no cargo build first).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/stack.sh

schemathesis_version=4.32.5
venv=$(realpath -m "${SCHEMATHESIS_VENV:-.cache/schemathesis}")
profile=${PROFILE:-debug}
max_examples=${MAX_EXAMPLES:-40}
max_time=${MAX_TIME:-60}
seed=${SEED:-1}
# Every check that fits this API. Left out: positive_data_acceptance (a well-formed
# order for a sku nobody sells is a 422 `unknown_sku` by contract, and lines naming
# the same sku add up past the per-line limit) and use_after_free (a released
# reservation stays readable, with status `released`, by contract).
checks=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance,negative_data_rejection,unsupported_method,allow_header_conformance,missing_required_header,ignored_auth

section() { printf '\n== %s ==\n' "$*"; }

if [ "$("$venv/bin/schemathesis" --version 2>/dev/null)" != "schemathesis, version $schemathesis_version" ]; then
  section "installing schemathesis $schemathesis_version into $venv"
  if ! python3 -c 'import ensurepip' 2>/dev/null; then
    apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
  fi
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$schemathesis_version"
fi

case "$profile" in
  dev | debug) cargo_profile=dev ;;
  *) cargo_profile=$profile ;;
esac
STACK_BIN_DIR=$(stack_bin_dir "$profile")
stack_build "$(section "building the services ($profile)")" --profile "$cargo_profile" --bins --quiet

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
inventory_port=$(free_port)
pricing_port=$(free_port)
order_port=$(free_port)
identity_port=$(free_port)
nats_port=$(free_port)
token=schemathesis-$RANDOM$RANDOM

work=$(mktemp -d)
stop() {
  stack_stop_all
  rm -rf "$work"
}
trap stop EXIT

stack_nats "$nats_port" "$work/nats" "$work/nats.log"

# Chaos off whatever the caller's environment says; logs go to files, shown on failure.
common=(HOST=127.0.0.1 DATA_DIR="$work/data" RUST_LOG=warn CHAOS_DELAY_RATE=0 CHAOS_FAILURE_RATE=0)
# Identity first: the others trust its tokens, and schemathesis needs one.
scopes='["inventory:reserve","inventory:write","pricing:write","orders:admin","chaos:write"]'
stack_service identity "$work/identity.log" "${common[@]}" PORT="$identity_port" IDENTITY_SIGNIN_FAILURE_BURST=1000000 \
  IDENTITY_ISSUER="http://127.0.0.1:$identity_port" ACCESS_TOKEN_TTL_S=3600 \
  IDENTITY_CLIENTS="[{\"client_id\":\"schemathesis\",\"client_secret\":\"$token\",\"scopes\":$scopes}]"
auth=(AUTH_ISSUER="http://127.0.0.1:$identity_port" AUTH_REQUIRED=true)
events=(NATS_URL="$STACK_NATS_URL")
stack_service inventory "$work/inventory.log" "${common[@]}" "${auth[@]}" "${events[@]}" PORT="$inventory_port" \
  SERVICE_TOKEN="$token" INVENTORY_CATALOG=bench/inventory-catalog.json
stack_service pricing "$work/pricing.log" "${common[@]}" "${auth[@]}" "${events[@]}" PORT="$pricing_port"
stack_service order "$work/order.log" "${common[@]}" "${auth[@]}" "${events[@]}" PORT="$order_port" SERVICE_TOKEN="$token" \
  INVENTORY_URL="http://127.0.0.1:$inventory_port" PRICING_URL="http://127.0.0.1:$pricing_port"

stack_ready inventory "http://127.0.0.1:$inventory_port/health/ready" || exit 1
stack_ready pricing "http://127.0.0.1:$pricing_port/health/ready" || exit 1
stack_ready order "http://127.0.0.1:$order_port/health/ready" || exit 1
stack_ready identity "http://127.0.0.1:$identity_port/health/ready" || exit 1

access_token=$(curl -fs -u "schemathesis:$token" -d grant_type=client_credentials \
  "http://127.0.0.1:$identity_port/token" | python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
bearer="Authorization: Bearer $access_token"

seed_args=()
[ "$seed" != random ] && seed_args=(--seed "$seed")

failed=()
# One schemathesis run against a service; its output also goes to $work/st.out.
schemathesis_run() { # port, extra schemathesis arguments...
  local port=$1
  shift
  # Run from the temporary folder: schemathesis keeps a crash cache in its
  # working directory, which should not land in the repository.
  (cd "$work" && "$venv/bin/schemathesis" run "http://127.0.0.1:$port/openapi.json" \
    --checks "$checks" \
    --max-examples "$max_examples" \
    --max-time "$max_time" \
    --request-timeout 10 \
    --workers 2 \
    --suppress-health-check too_slow,filter_too_much \
    --no-color \
    --generation-database none \
    "${seed_args[@]}" \
    "$@") 2>&1 | tee "$work/st.out"
  return "${PIPESTATUS[0]}"
}

run() { # service, port, extra schemathesis arguments...
  local service=$1 port=$2
  shift 2
  case " ${ONLY:-$service} " in *" $service "*) ;; *) return 0 ;; esac
  section "schemathesis: $service (:$port)"
  local started=$SECONDS
  if schemathesis_run "$port" "$@"; then
    echo "$service: passed in $((SECONDS - started)) s"
    return 0
  fi
  # A run whose only problems are the tool's own Runtime Errors found nothing
  # about the service. Seen on pricing's GET /price/{sku}, in the coverage
  # phase: hypothesis crashing while it describes a lambda ("AST constructor
  # recursion depth mismatch", Python 3.11). The run's other phases and
  # operations had passed; it runs once more without the coverage phase, so
  # that examples, fuzzing and the stateful tests still check every
  # operation. Any check failure (a line starting with a cross and "ST")
  # fails at once.
  if ! grep -q '❌ ST' "$work/st.out" && grep -q 'Runtime Error' "$work/st.out"; then
    echo "$service: schemathesis itself crashed (Runtime Error, no finding): once more without its coverage phase"
    if schemathesis_run "$port" "$@" --phases examples,fuzzing,stateful; then
      echo "$service: passed in $((SECONDS - started)) s (second run)"
      return 0
    fi
  fi
  echo "$service: FAILED after $((SECONDS - started)) s; its log:"
  tail -n 50 "$work/$service.log"
  failed+=("$service")
}

run inventory "$inventory_port" --header "$bearer"
run pricing "$pricing_port" --header "$bearer"
run order "$order_port" --header "$bearer" --exclude-path /events/stream
# The client's HTTP Basic credentials, so that POST /token is exercised beyond its 401.
run identity "$identity_port" --header "Authorization: Basic $(printf 'schemathesis:%s' "$token" | base64 -w0)"

if [ ${#failed[@]} -gt 0 ]; then
  echo "schemathesis found problems in: ${failed[*]}" >&2
  exit 1
fi
echo "schemathesis: no findings"
