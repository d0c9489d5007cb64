#!/usr/bin/env bash
# The whole test suite, as CI runs it. Installs what it needs on a fresh machine.
#
#   1. formatting and lints (cargo fmt, clippy -D warnings)
#   2. every crate's unit and HTTP tests on embedded SQLite, then schemathesis
#      against each service's /openapi.json (scripts/schemathesis.sh); the events
#      tests run a real nats-server (Debian's nats-server, installed when missing,
#      NATS_SERVER_BIN exported for them); the event catalogue (events/asyncapi.json)
#      through the AsyncAPI CLI's validator (scripts/check-asyncapi.sh); then HEAD against
#      the last release (scripts/compat.sh): the baseline's services built from a worktree,
#      each /openapi.json diffed by Optic, each event schema checked by jsoncompat; and mixed
#      versions (scripts/compat-matrix.sh): each service in turn at the baseline, then
#      inventory and pricing together, the journey and the seed's commands against each
#   3. the inventory, order, pricing and identity HTTP suites again on PostgreSQL: a
#      throwaway cluster (scripts/with-postgres.sh; Debian's postgresql, installed when
#      missing), and the access-control journey on it (scripts/auth-journey.sh)
#   3b. the events under faults (scripts/event-faults.py on its own PostgreSQL cluster): two
#      replicas of each producer, a 3-node JetStream cluster on loopback, nats-server nodes,
#      a relaying replica and a consuming one killed or frozen under a mixed workload;
#      every committed change's event once, in order per aggregate, every effect once
#   3c. a rolling restart (scripts/rolling-restart.sh on its own PostgreSQL cluster): two
#      replicas each of inventory, pricing and order, each restarted in turn under a steady
#      order rate, HEAD -> HEAD and baseline -> HEAD; no order fails, nothing oversold
#   4. the seed's curl commands against the local stack started by scripts/run-local.sh
#      (events on: it starts its own nats-server), then the access-control journey on
#      SQLite with tokens required
#   5. the dashboards and alerts against a real Prometheus (Debian's prometheus, installed
#      when missing): its own local stack driven with known traffic, every counter's move,
#      dashboard query and rule checked (scripts/observability-check.py)
#   6. real network faults (scripts/netfault.sh, root only: skipped with a line saying so
#      otherwise, a failure under CI=true; iptables installed when missing): the services in network namespaces, tc netem / NFQUEUE delay, loss and
#      reordering, iptables partitions, under an order load, invariants checked per fault
#   7. the Kubernetes manifests, rendered and checked offline (scripts/check-k8s.sh),
#      then Prometheus's configuration, rules and alert unit tests (promtool) and the
#      Grafana dashboards (scripts/check-observability.sh), and the README's benchmark
#      table against bench/results/latest.json (scripts/bench-readme.py --check)
#   8. the web client in headless Chromium (scripts/browser-test.sh; Debian's chromium and
#      nginx, for the gateway tests, installed when missing)
#
# Every tool a step needs is installed when missing (scripts/lib/need.sh); one that cannot
# be is an error naming its package. Under CI=true no step and no test skips itself.
set -euo pipefail
cd "$(dirname "$0")/.."

section() { printf '\n== %s ==\n' "$*"; }

. scripts/lib/need.sh
# The events tests start a real nats-server (JetStream); Debian puts it in /usr/sbin.
need curl:curl jq:jq python3:python3
[ -n "${NATS_SERVER_BIN:-}" ] || need nats-server:nats-server
# Inherited by every cargo test below, the PostgreSQL pass (scripts/with-postgres.sh
# runs its command as this user, with this environment) and the local stacks
# (scripts/run-local.sh starts this nats-server too).
export NATS_SERVER_BIN=${NATS_SERVER_BIN:-$(have nats-server)}

section "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings

section "tests (SQLite)"
cargo test --workspace

section "property-based API tests (schemathesis against each /openapi.json)"
PROFILE=debug scripts/schemathesis.sh

section "the event catalogue (the AsyncAPI CLI against events/asyncapi.json)"
scripts/check-asyncapi.sh

section "compatibility with the last release (compat/baseline: OpenAPI and event schemas)"
# Builds the baseline's services next to HEAD's (only the workspace's crates build again),
# diffs each /openapi.json (Optic) and each event schema (jsoncompat) against HEAD's.
scripts/compat.sh

section "mixed versions (each service in turn at compat/baseline, the others at HEAD)"
# The baseline's binaries compat.sh just built (target/compat-baseline/); for each
# combination the journey (tokens required), the seed's curl commands, and events across
# versions; a table of them. About a minute.
scripts/compat-matrix.sh

section "tests (PostgreSQL)"
# A throwaway cluster (installed from Debian when missing); each test creates
# its own database on it.
# The whole events suite runs here too: relays sharing one outbox take turns
# through its lease only on PostgreSQL. On the same cluster, the
# access-control journey through the local stack with tokens required, one
# database per service.
scripts/with-postgres.sh sh -c \
  'TEST_DATABASE_URL="$DATABASE_SERVER_URL" cargo test -p inventory -p order -p pricing -p identity --test api &&
   TEST_DATABASE_URL="$DATABASE_SERVER_URL" cargo test -p shared-events --test events &&
   TEST_DATABASE_URL="$DATABASE_SERVER_URL" cargo test -p shared-db postgresql &&
   scripts/auth-journey.sh'

section "events under faults (two replicas per producer on PostgreSQL, a 3-node JetStream cluster)"
# Kills and freezes nats-server nodes, a relaying replica and a consuming one under a mixed
# workload, then checks every event once, in order, every effect once (the debug binaries
# built above; about 2 minutes).
scripts/with-postgres.sh python3 scripts/event-faults.py

section "a rolling restart (two replicas each, HEAD -> HEAD and baseline -> HEAD)"
# Every replica restarted in turn under a steady order rate, on PostgreSQL: no order fails,
# nothing is oversold, every order is read back (the baseline's binaries from the compat
# section; about a minute).
scripts/rolling-restart.sh

section "the seed's curl commands against the local stack"
data_dir=$(mktemp -d)
log=$(mktemp)
PROFILE=debug DEMO_CHAOS=off DATA_DIR="$data_dir" \
  INVENTORY_PORT=17001 ORDER_PORT=17002 PRICING_PORT=17003 IDENTITY_PORT=17004 CLIENT_PORT=18080 NATS_PORT=17022 \
  scripts/run-local.sh >"$log" 2>&1 &
stack=$!
trap 'kill "$stack" 2>/dev/null || true; wait "$stack" 2>/dev/null || true; rm -rf "$data_dir"' EXIT
for _ in $(seq 1 600); do
  grep -q "Ctrl-C stops everything" "$log" && break
  kill -0 "$stack" 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.5
done
scripts/seed-commands.sh http://localhost:17001 http://localhost:17002 http://localhost:17003 ||
  { echo "-- the stack's log --"; cat "$log"; exit 1; }
kill "$stack"
wait "$stack" 2>/dev/null || true

section "the access-control journey (SQLite, tokens required)"
scripts/auth-journey.sh

section "the adversarial suite (OWASP API Security Top 10, tokens required)"
PROFILE=debug scripts/security-suite.sh

section "dashboards and alerts against a real Prometheus"
# Its own stack (the debug binaries built above) on free ports, with a nats-server and
# Debian's prometheus (installed when missing) scraping every second.
PROFILE=debug python3 scripts/observability-check.py

section "real network faults (namespaces, netem, iptables partitions)"
# Needs root (network namespaces, qdiscs, iptables); everything it creates lives in
# namespaces of its own and goes when it ends. About 3.5 minutes.
if [ "$(id -u)" -eq 0 ]; then
  PROFILE=debug scripts/netfault.sh
else
  skip_or_fail "scripts/netfault.sh needs root (run as root to include it)"
fi

section "Kubernetes manifests"
scripts/check-k8s.sh

section "Prometheus configuration, rules and alert tests; Grafana dashboards (offline)"
scripts/check-observability.sh

section "the README's benchmark table against bench/results/latest.json"
python3 scripts/bench-readme.py --check

section "web client in a browser"
scripts/browser-test.sh
