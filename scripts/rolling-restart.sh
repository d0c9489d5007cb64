#!/usr/bin/env bash
# A rolling restart drops nothing (scripts/rolling-restart.py, on a throwaway PostgreSQL
# cluster from scripts/with-postgres.sh): two replicas each of identity, inventory, pricing
# and order, access control on, under a steady order rate and a trickle of sign-ins, every
# replica restarted in turn. Twice: HEAD's binaries
# replaced by HEAD's (a redeploy), then the last release's (compat/baseline, built once by
# scripts/lib/baseline.sh into target/compat-baseline/) replaced by HEAD's: the real upgrade,
# HEAD's migrations running while the baseline's replicas still serve. About a minute.
#
# Settings (environment): BIN_DIR (HEAD's binaries; default: cargo builds them in debug),
# ROLLING_RATE, ROLLING_KEEP (scripts/rolling-restart.py), NATS_SERVER_BIN.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/need.sh
. scripts/lib/baseline.sh

need git:git jq:jq python3:python3
[ -n "${NATS_SERVER_BIN:-}" ] || need nats-server:nats-server
NATS_SERVER_BIN=${NATS_SERVER_BIN:-$(have nats-server)}
export NATS_SERVER_BIN

target_dir=$(cargo metadata --format-version 1 --no-deps --offline | jq -r .target_directory)
baseline_binaries "$target_dir"
head_bin=${BIN_DIR:-$target_dir/debug}
if [ -z "${BIN_DIR:-}" ]; then
  echo "building HEAD's services (debug)"
  cargo build --bins --quiet
fi
scripts/with-postgres.sh python3 scripts/rolling-restart.py \
  "head-to-head=$head_bin:$head_bin" "baseline-to-head=$BASELINE_BIN_DIR:$head_bin"
