#!/usr/bin/env bash
# HEAD against the last release (the commit compat/baseline names): what the baseline's
# clients and consumers rely on must still hold.
#
#   1. The baseline's services, built in debug from a `git worktree` of this clone (in a
#      temporary folder, removed at exit) into the same cargo target folder as HEAD's, and
#      kept in target/compat-baseline/<commit>/ for scripts/compat-matrix.sh (and the next
#      run) by scripts/lib/baseline.sh, which says how HEAD's artifacts stay HEAD's.
#   2. The four services at the baseline and at HEAD, each side a stack of its own on free
#      ports with scripts/schemathesis.sh's settings (events on, tokens required, chaos
#      off), so optional routes are described alike; each /openapi.json fetched.
#   3. Each service's pair diffed by Optic (@useoptic/optic, pinned by compat/package.json
#      and its package-lock.json, installed with `npm ci` under .cache/compat/) with
#      compat/optic-standard.yml: a removed operation or response field, a request field
#      made required, a narrowed type... fails. compat/openapi-exceptions.json lists the
#      reviewed ones, [{"service", "method", "path", "reason"}]: those operations are left
#      out of the diff (for this baseline only: they go when it moves).
#   4. Every event schema at the baseline (<service>/events/<type>.schema.json) against
#      HEAD's: every event the old schema accepts must stay valid (jsoncompat, pinned by
#      compat/requirements.txt, in a venv under .cache/compat/; scripts/compat.py). A
#      schema gone at HEAD fails; so does a changed `pattern`, which the tool does not
#      compare. compat/event-exceptions.json lists reviewed ones, [{"event", "reason"}].
#
# Ends with a table: check, service or event, result. Exit 1 when anything failed. A tool
# that cannot be installed is an error, never a skip. The clone needs the baseline's
# commit (not a shallow clone: `git fetch --unshallow`).
#
# Settings (environment): COMPAT_CACHE (default .cache/compat: the npm packages and the
# venv), BIN_DIR (HEAD's binaries, built elsewhere; default: cargo builds them in the
# target folder), NATS_SERVER_BIN (scripts/lib/stack.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
. scripts/lib/need.sh
. scripts/lib/stack.sh
. scripts/lib/baseline.sh

section() { printf '\n== %s ==\n' "$*"; }
started=$SECONDS

need git:git curl:curl jq:jq python3:python3 node:nodejs npm:npm
[ -n "${NATS_SERVER_BIN:-}" ] || need nats-server:nats-server

baseline_commit
baseline=$BASELINE_COMMIT
cache=$(realpath -m "${COMPAT_CACHE:-.cache/compat}")
target_dir=$(cargo metadata --format-version 1 --no-deps --offline | jq -r .target_directory)
services=("${BASELINE_SERVICES[@]}")

work=$(mktemp -d)
cleanup() {
  stack_stop_all
  baseline_worktree_remove "$work/baseline"
  rm -rf "$work"
}
trap cleanup EXIT

# --- the tools, pinned; installed again only when their pins change ---------------------
optic_dir=$cache/optic
if ! cmp -s compat/package-lock.json "$optic_dir/installed.lock" || [ ! -x "$optic_dir/node_modules/.bin/optic" ]; then
  section "installing Optic (npm ci, compat/package-lock.json) into $optic_dir"
  rm -rf "$optic_dir"
  mkdir -p "$optic_dir"
  cp compat/package.json compat/package-lock.json "$optic_dir/"
  (cd "$optic_dir" && npm ci --no-audit --no-fund --loglevel=error)
  cp compat/package-lock.json "$optic_dir/installed.lock"
fi
venv=$cache/venv
if ! cmp -s compat/requirements.txt "$venv/installed.txt" || [ ! -x "$venv/bin/python" ]; then
  section "installing jsoncompat (compat/requirements.txt) into $venv"
  if ! python3 -c 'import ensurepip' 2>/dev/null; then
    apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
  fi
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r compat/requirements.txt
  cp compat/requirements.txt "$venv/installed.txt"
fi

# --- the binaries ------------------------------------------------------------------------
section "the baseline's services (${baseline:0:12}, debug, in $target_dir)"
baseline_worktree "$work/baseline"
baseline_binaries "$target_dir" "$work/baseline"
baseline_build=$BASELINE_BUILD_S

head_bin=${BIN_DIR:-$target_dir/debug}
if [ -z "${BIN_DIR:-}" ]; then
  section "building HEAD's services (debug)"
  cargo build --bins --quiet
fi

# --- the two stacks, one after the other -------------------------------------------------
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
token=compat-$RANDOM$RANDOM
scopes='["inventory:reserve","inventory:write","pricing:write","orders:admin","chaos:write"]'

# describe SIDE BIN_DIR TREE: starts SIDE's stack with scripts/schemathesis.sh's settings,
# saves each service's /openapi.json as $work/openapi/SIDE/SERVICE.json, stops the stack.
describe() {
  local side=$1 dir=$2 tree=$3 service
  local logs=$work/$side identity inventory pricing order nats
  mkdir -p "$logs" "$work/openapi/$side"
  identity=$(free_port) inventory=$(free_port) pricing=$(free_port) order=$(free_port) nats=$(free_port)
  STACK_BIN_DIR=$dir
  stack_nats "$nats" "$logs/nats" "$logs/nats.log"
  local common=(HOST=127.0.0.1 DATA_DIR="$logs/data" RUST_LOG=warn CHAOS_DELAY_RATE=0 CHAOS_FAILURE_RATE=0)
  local auth=(AUTH_ISSUER="http://127.0.0.1:$identity" AUTH_REQUIRED=true) events=(NATS_URL="$STACK_NATS_URL")
  stack_service identity "$logs/identity.log" "${common[@]}" PORT="$identity" IDENTITY_SIGNIN_FAILURE_BURST=1000000 \
    IDENTITY_ISSUER="http://127.0.0.1:$identity" ACCESS_TOKEN_TTL_S=3600 \
    IDENTITY_CLIENTS="[{\"client_id\":\"compat\",\"client_secret\":\"$token\",\"scopes\":$scopes}]"
  stack_service inventory "$logs/inventory.log" "${common[@]}" "${auth[@]}" "${events[@]}" PORT="$inventory" \
    SERVICE_TOKEN="$token" INVENTORY_CATALOG="$tree/bench/inventory-catalog.json"
  stack_service pricing "$logs/pricing.log" "${common[@]}" "${auth[@]}" "${events[@]}" PORT="$pricing"
  stack_service order "$logs/order.log" "${common[@]}" "${auth[@]}" "${events[@]}" PORT="$order" SERVICE_TOKEN="$token" \
    INVENTORY_URL="http://127.0.0.1:$inventory" PRICING_URL="http://127.0.0.1:$pricing"
  for service in "${services[@]}"; do
    stack_ready "$service" "http://127.0.0.1:${!service}/health/ready" 30
    curl -fsS --max-time 10 "http://127.0.0.1:${!service}/openapi.json" -o "$work/openapi/$side/$service.json"
  done
  stack_stop_all
}

section "each service's /openapi.json at the baseline and at HEAD"
describe baseline "$BASELINE_BIN_DIR" "$work/baseline"
describe head "$head_bin" "$repo"
echo "fetched: $(cd "$work/openapi" && echo */*.json)"

# --- the checks --------------------------------------------------------------------------
rows=()
failed=0
section "OpenAPI: HEAD against the baseline (Optic)"
for service in "${services[@]}"; do
  diff_dir=$work/diff/$service
  mkdir -p "$diff_dir"
  cp "$work/openapi/baseline/$service.json" "$diff_dir/baseline.json"
  cp "$work/openapi/head/$service.json" "$diff_dir/head.json"
  reviewed=$(python3 scripts/compat.py mark-reviewed "$service" compat/openapi-exceptions.json \
    "$diff_dir/baseline.json" "$diff_dir/head.json")
  ok=ok
  [ "$reviewed" = 0 ] || ok="ok ($reviewed operations left out: compat/openapi-exceptions.json)"
  # Run where there is no git repository: Optic then compares the two files as they are.
  if (cd "$diff_dir" && OPTIC_TELEMETRY_LEVEL=off "$optic_dir/node_modules/.bin/optic" diff baseline.json head.json \
    --check --standard "$repo/compat/optic-standard.yml") >"$diff_dir/optic.out" 2>&1; then
    rows+=("openapi	$service	$ok")
  else
    failed=1
    if grep -q 'breaking change' "$diff_dir/optic.out"; then
      rows+=("openapi	$service	FAILED: breaking change (above)")
      echo "-- $service: the breaking changes --"
      grep -E '^ *x ' "$diff_dir/optic.out" || cat "$diff_dir/optic.out"
    else
      rows+=("openapi	$service	FAILED: optic did not finish (above)")
      echo "-- $service: optic's output --"
      cat "$diff_dir/optic.out"
    fi
  fi
done

section "event schemas: HEAD against the baseline (jsoncompat)"
if ! "$venv/bin/python" scripts/compat.py events "$work/baseline" "$repo" compat/event-exceptions.json >"$work/events.out"; then
  failed=1
fi
while IFS= read -r row; do rows+=("$row"); done <"$work/events.out"
grep -q '^event' "$work/events.out" || rows+=("event	(all)	FAILED: the check did not run")

section "compatibility with the baseline ${baseline:0:12} (compat/baseline)"
printf '%s\n' "${rows[@]}" | awk -F'\t' '{ printf "%-8s %-36s %s\n", $1, $2, $3 }'
echo "baseline build $baseline_build s, total $((SECONDS - started)) s"
exit $failed
