#!/usr/bin/env bash
# The event catalogue, events/asyncapi.json (AsyncAPI 3.0), checked by the AsyncAPI CLI's
# validator (@asyncapi/cli from npm, pinned; npx installs it on first use): the document and
# every event schema it references (<service>/events/<type>.schema.json). A warning fails
# it too. The Rust events tests check that every published event matches the schema the
# document gives its channel.
#
# Cost: the first run on a fresh machine downloads the CLI (about 1.5 GB in npm's cache,
# some 2 minutes); later runs take seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/lib/need.sh
need node:nodejs npm:npm npx:npm

# The CLI reports usage to its makers unless its settings file says not to.
settings=$(mktemp)
trap 'rm -f "$settings"' EXIT
echo '{"analyticsEnabled": "false", "infoMessageShown": "true", "userID": "ci"}' >"$settings"
ASYNCAPI_METRICS_CONFIG_PATH=$settings npx --yes --loglevel=error @asyncapi/cli@4.1.1 \
  validate events/asyncapi.json --fail-severity=warn
