#!/usr/bin/env bash
# Runs a command against a throwaway PostgreSQL cluster: initdb in a temporary
# folder, a free port on 127.0.0.1, trust authentication, fsync off (test data
# only). Exports PGHOST, PGPORT, PGUSER, PGDATA (the data folder: its postmaster.pid
# names the server's process) and DATABASE_SERVER_URL
# (postgres://postgres@127.0.0.1:PORT/postgres), runs the command, then stops
# the cluster and removes the folder. Installs Debian's postgresql when missing.
#
#   scripts/with-postgres.sh cargo test -p order
set -euo pipefail

bin_dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$bin_dir" ]; then
  apt-get update -qq && apt-get install -y -qq postgresql >/dev/null
  bin_dir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
fi

dir=$(mktemp -d)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# PostgreSQL refuses to run as root: use the postgres account when we are root.
as_owner=()
if [ "$(id -u)" = 0 ]; then
  chown postgres "$dir"
  as_owner=(runuser -u postgres --)
fi
"${as_owner[@]}" "$bin_dir/initdb" -D "$dir/data" -A trust -U postgres --no-sync >/dev/null
"${as_owner[@]}" "$bin_dir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -o \
  "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
  start >/dev/null

stop() {
  "${as_owner[@]}" "$bin_dir/pg_ctl" -D "$dir/data" -m fast stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap stop EXIT

export PGHOST=127.0.0.1 PGPORT=$port PGUSER=postgres PGDATA=$dir/data
export DATABASE_SERVER_URL="postgres://postgres@127.0.0.1:$port/postgres"
"$@"
