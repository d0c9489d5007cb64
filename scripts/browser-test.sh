#!/usr/bin/env bash
# Browser tests of the web client (client/): headless Chromium, driven by
# playwright-core from node's built-in test runner, against the real service
# binaries. Installs what it needs on a fresh machine (as root, no prompts):
#
#   1. Debian's chromium, nginx (the gateway tests) and nats-server (the activity feed),
#      node/npm and python3, when missing (scripts/lib/need.sh)
#   2. client/tests' npm packages, exactly as package-lock.json says (npm ci)
#   3. the service binaries: cargo build --workspace --bins (target/debug)
#   4. node --test in client/tests: each test file starts the services it needs on
#      free ports, serves client/ with python3 -m http.server, and writes the
#      screenshots to client/screenshots/
#
# Settings (environment): SKIP_BUILD=1 uses the binaries already in target/debug;
# CHROMIUM_PATH (default /usr/bin/chromium); CARGO_TARGET_DIR as for cargo.
# Under CI=true a test that skips itself fails the run.
# Extra arguments go to `node --test` in place of the test files, e.g.
#   scripts/browser-test.sh storefront.test.mjs
set -euo pipefail
cd "$(dirname "$0")/.."

section() { printf '\n== %s ==\n' "$*"; }

. scripts/lib/need.sh
# nginx: the gateway tests run the real gateway configuration (docker/gateway/); nats-server:
# the activity feed with events on.
need node:nodejs npm:npm python3:python3 nginx:nginx /usr/share/fonts/truetype/liberation:fonts-liberation
[ -n "${NATS_SERVER_BIN:-}" ] || need nats-server:nats-server
[ -n "${CHROMIUM_PATH:-}" ] || need /usr/bin/chromium:chromium

section "npm ci (client/tests)"
(cd client/tests && npm ci --no-audit --no-fund --loglevel=error)

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  section "building the services (cargo build --workspace --bins)"
  cargo build --workspace --bins --quiet
fi

section "browser tests"
cd client/tests
[ $# -gt 0 ] || set -- *.test.mjs
report=$(mktemp)
trap 'rm -f "$report"' EXIT
node --test --test-concurrency=1 --test-reporter=spec "$@" | tee "$report"
# node's closing lines: "ℹ skipped N", "ℹ todo N". A test that skipped itself (a missing
# tool, a service that did not start as expected) fails CI rather than passing unseen.
skipped=$(awk '/^ℹ (skipped|todo) [0-9]+$/ { n += $3 } END { print n + 0 }' "$report")
[ "$skipped" = 0 ] || skip_or_fail "$skipped browser test(s) skipped or todo (see above)"
