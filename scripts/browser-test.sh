#!/usr/bin/env bash
# Browser tests of the web client (client/): headless Chromium, driven by
# playwright-core from node's built-in test runner, against the real service
# binaries. Installs what it needs on a fresh machine (as root, no prompts):
#
#   1. Debian's chromium (and node/npm, python3 when missing)
#   2. client/tests' npm packages, exactly as package-lock.json says (npm ci)
#   3. the service binaries: cargo build --workspace --bins (target/debug)
#   4. node --test in client/tests: each test file starts the services it needs on
#      free ports, serves client/ with python3 -m http.server, and writes the
#      screenshots to client/screenshots/
#
# Settings (environment): SKIP_BUILD=1 uses the binaries already in target/debug;
# CHROMIUM_PATH (default /usr/bin/chromium); CARGO_TARGET_DIR as for cargo.
# Extra arguments go to `node --test` in place of the test files, e.g.
#   scripts/browser-test.sh storefront.test.mjs
set -euo pipefail
cd "$(dirname "$0")/.."

section() { printf '\n== %s ==\n' "$*"; }

apt_install() {
  section "installing $*"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

missing=()
[ -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ] || missing+=(chromium fonts-liberation)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
command -v python3 >/dev/null || missing+=(python3)
if [ ${#missing[@]} -gt 0 ]; then
  apt_install "${missing[@]}"
fi

section "npm ci (client/tests)"
(cd client/tests && npm ci --no-audit --no-fund --loglevel=error)

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  section "building the services (cargo build --workspace --bins)"
  cargo build --workspace --bins --quiet
fi

section "browser tests"
cd client/tests
if [ $# -gt 0 ]; then
  exec node --test --test-concurrency=1 --test-reporter=spec "$@"
fi
exec npm test --silent
