#!/usr/bin/env bash
# The adversarial suite (security/run.py; README "Adversarial suite"): starts the local
# stack with tokens required (scripts/run-local.sh, AUTH=on) and the side processes some
# attacks need, on ports 17301-17342 and 18380-18382, attacks it by the OWASP API
# Security Top 10 (2023), one line per attack, and ends with "N passed, N failed"
# (non-zero on any failure). PROFILE as run-local.sh (default debug here); KEEP=1 keeps
# the logs and data. Under CI=true an attack that cannot run is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/lib/need.sh
# nats-server: the live stream's attacks; nginx: the gateway's; kubectl (on the machine
# for the manifests' step, not installed here): the prod overlay's.
need python3:python3 nginx:nginx
[ -n "${NATS_SERVER_BIN:-}" ] || need nats-server:nats-server

PROFILE="${PROFILE:-debug}" exec python3 security/run.py
