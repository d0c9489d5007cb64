#!/usr/bin/env bash
# The one way the scripts start a stack: the service binaries, a nats-server, and any
# helper process (the client's static server, a load generator), each with its own
# environment and port; a readiness wait with a timeout that, when it fails, says why
# and shows the process's log tail; a clean stop (SIGTERM, then SIGKILL after
# STACK_STOP_TIMEOUT s, default 10).
#
# Bash scripts source it and call the functions below: the processes are children of
# the script's own shell (so `wait`, `wait -n` and traps work as before), their pids,
# names and logs kept in STACK_PIDS, STACK_NAMES and STACK_LOGS. What each stack looks
# like (ports, per-service settings, data folders, DATABASE_URL, events on or off) stays
# in the calling script; this file only knows how to start, wait and stop.
#
# Python scripts use the same code through its command form (scripts/lib/stack.py wraps
# it): `bash scripts/lib/stack.sh exec|nats ...` becomes the process they Popen (it
# execs into the binary, so the pid they hold is the service's), and `ready`,
# `listening` and `stop` are the same waits and stop as below.
#
# Settings (environment):
#   BIN_DIR      where the service binaries are; else target/debug for PROFILE=debug|dev,
#                target/PROFILE otherwise (each script says its default profile)
#   BUILD=no     skip the cargo build a script would run first (use the binaries as they are)
#   NATS_SERVER_BIN  the nats-server to run (default: nats-server on the PATH, else /usr/sbin)
#   STACK_WRAP   a command prefix for starting processes, e.g. "ip netns exec ns1"
#                (set for one call: STACK_WRAP="ip netns exec ns1" stack_service ...)
#   STACK_PROBE  a command prefix for the readiness probes (curl), the same way
#
# Functions (sourced):
#   stack_bin_dir DEFAULT_PROFILE           echoes the binaries' folder (BIN_DIR / PROFILE)
#   stack_build MESSAGE CARGO_ARGS...       prints MESSAGE and runs `cargo build ARGS`, unless BUILD=no
#   stack_start [-a] NAME LOG COMMAND...    COMMAND in the background, output to LOG (- keeps the
#                                           caller's; -a appends); sets STACK_PID
#   stack_service SERVICE LOG [ENV...]      $STACK_BIN_DIR/SERVICE via stack_start, under
#                                           `env ENV...` (VAR=value, -u VAR); name SERVICE
#   stack_ready NAME URL [TIMEOUT]          waits until URL answers 2xx (default 10 s)
#   stack_nats PORT STORE LOG [NAME]        a JetStream nats-server on 127.0.0.1:PORT, waited for;
#                                           sets STACK_NATS_URL
#   stack_running MESSAGE                   names each recorded process no longer running,
#                                           followed by MESSAGE; false if any
#   stack_stop PID...                       stops those (recorded) processes
#   stack_stop_all                          stops every recorded process, last started first
#
# Commands (bash scripts/lib/stack.sh COMMAND ...), for the Python scripts:
#   exec [--bin-dir DIR] SERVICE [ENV...]   execs DIR/SERVICE (default: BIN_DIR / PROFILE) under
#                                           `env ENV...`
#   nats PORT STORE                         execs a JetStream nats-server on 127.0.0.1:PORT
#   ready NAME URL PID LOG [TIMEOUT]        as stack_ready, for a process started elsewhere
#   listening NAME PORT PID LOG [TIMEOUT]   waits until 127.0.0.1:PORT accepts connections
#   stop PID...                             SIGTERM, SIGKILL after STACK_STOP_TIMEOUT s
#   bin-dir DEFAULT_PROFILE | build MESSAGE CARGO_ARGS... | nats-server (its path)

STACK_PIDS=() STACK_NAMES=() STACK_LOGS=()
STACK_PID=
STACK_BIN_DIR=${STACK_BIN_DIR:-}

stack_bin_dir() {
  if [ -n "${BIN_DIR:-}" ]; then
    echo "$BIN_DIR"
    return
  fi
  case ${PROFILE:-$1} in
    dev | debug) echo target/debug ;;
    *) echo "target/${PROFILE:-$1}" ;;
  esac
}

stack_build() {
  local message=$1
  shift
  [ "${BUILD:-}" != no ] || return 0
  if [ -n "$message" ]; then echo "$message"; fi
  cargo build "$@"
}

stack_start() {
  local append=
  if [ "$1" = -a ]; then append=1; shift; fi
  local name=$1 log=$2 wrap=()
  shift 2
  read -ra wrap <<<"${STACK_WRAP:-}"
  if [ "$log" = - ]; then
    "${wrap[@]}" "$@" &
  elif [ -n "$append" ]; then
    "${wrap[@]}" "$@" >>"$log" 2>&1 &
  else
    "${wrap[@]}" "$@" >"$log" 2>&1 &
  fi
  STACK_PID=$!
  STACK_PIDS+=("$STACK_PID") STACK_NAMES+=("$name") STACK_LOGS+=("$log")
}

stack_service() {
  local append=()
  if [ "$1" = -a ]; then append=(-a); shift; fi
  local service=$1 log=$2
  shift 2
  stack_start "${append[@]}" "$service" "$log" env "$@" "${STACK_BIN_DIR:-$(stack_bin_dir debug)}/$service"
}

# Whether PID is a process that has not exited (a zombie, exited but not yet reaped by
# its parent, counts as exited).
stack_alive() {
  kill -0 "$1" 2>/dev/null || return 1
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  stat=${stat##*) }
  [ "${stat:0:1}" != Z ]
}

stack_any_alive() { # PID...
  local pid
  for pid in "$@"; do stack_alive "$pid" && return 0; done
  return 1
}

stack_answers() { # URL: 2xx
  local probe_cmd=()
  read -ra probe_cmd <<<"${STACK_PROBE:-}"
  "${probe_cmd[@]}" curl -fs -o /dev/null --max-time 2 "$1"
}

stack_listens() { # PORT
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# stack_await NAME PID LOG TIMEOUT WHAT CHECK...: polls CHECK every 0.05 s until it
# succeeds; fails with a message and LOG's last lines when PID exits first or TIMEOUT
# seconds pass.
stack_await() {
  local name=$1 pid=$2 log=$3 timeout=$4 what=$5 i
  shift 5
  for ((i = 0; i < timeout * 20; i++)); do
    "$@" && return 0
    if [ -n "$pid" ] && ! stack_alive "$pid"; then
      echo "$name exited before it was $what" >&2
      stack_tail "$log"
      return 1
    fi
    sleep 0.05
  done
  "$@" && return 0
  echo "$name was not $what after $timeout s" >&2
  stack_tail "$log"
  return 1
}

stack_tail() { # LOG
  if [ -n "$1" ] && [ "$1" != - ] && [ -s "$1" ]; then
    echo "-- last lines of $1 --" >&2
    tail -n 20 "$1" >&2
  fi
}

stack_lookup() { # NAME: sets pid and log of the last process recorded under NAME
  local i
  pid='' log=''
  for i in "${!STACK_NAMES[@]}"; do
    if [ "${STACK_NAMES[$i]}" = "$1" ]; then pid=${STACK_PIDS[$i]} log=${STACK_LOGS[$i]}; fi
  done
  return 0
}

stack_ready() {
  local name=$1 url=$2 timeout=${3:-10} pid log
  stack_lookup "$name"
  stack_await "$name" "$pid" "$log" "$timeout" "ready ($url)" stack_answers "$url"
}

stack_nats_server() {
  local found=${NATS_SERVER_BIN:-$(command -v nats-server || true)}
  if [ -z "$found" ] && [ -x /usr/sbin/nats-server ]; then found=/usr/sbin/nats-server; fi
  [ -n "$found" ] || return 1
  echo "$found"
}

stack_nats() {
  local port=$1 store=$2 log=$3 name=${4:-nats-server} server
  server=$(stack_nats_server) || { echo "no nats-server: apt-get install nats-server, or set NATS_SERVER_BIN" >&2; return 1; }
  mkdir -p "$store"
  stack_start "$name" "$log" "$server" -js -sd "$store" -a 127.0.0.1 -p "$port"
  stack_await "$name" "$STACK_PID" "$log" 10 "listening on :$port" stack_listens "$port" || return 1
  # shellcheck disable=SC2034 # read by the calling script
  STACK_NATS_URL="nats://127.0.0.1:$port"
}

stack_running() {
  local i ok=0
  for i in "${!STACK_PIDS[@]}"; do
    stack_alive "${STACK_PIDS[$i]}" || { echo "${STACK_NAMES[$i]} $1" >&2; ok=1; }
  done
  return $ok
}

stack_stop() {
  local pid i keep_pids=() keep_names=() keep_logs=()
  [ $# -gt 0 ] || return 0
  kill "$@" 2>/dev/null || true
  for ((i = 0; i < ${STACK_STOP_TIMEOUT:-10} * 20; i++)); do
    stack_any_alive "$@" || break
    sleep 0.05
  done
  for pid in "$@"; do
    if stack_alive "$pid"; then kill -9 "$pid" 2>/dev/null || true; fi
    wait "$pid" 2>/dev/null || true
  done
  for i in "${!STACK_PIDS[@]}"; do
    case " $* " in *" ${STACK_PIDS[$i]} "*) continue ;; esac
    keep_pids+=("${STACK_PIDS[$i]}") keep_names+=("${STACK_NAMES[$i]}") keep_logs+=("${STACK_LOGS[$i]}")
  done
  STACK_PIDS=("${keep_pids[@]}") STACK_NAMES=("${keep_names[@]}") STACK_LOGS=("${keep_logs[@]}")
  return 0
}

stack_stop_all() {
  local i reversed=()
  for ((i = ${#STACK_PIDS[@]} - 1; i >= 0; i--)); do reversed+=("${STACK_PIDS[$i]}"); done
  stack_stop "${reversed[@]}"
}

# The command form (for the Python scripts): only when run, not when sourced.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  command=${1:-}
  shift || true
  case $command in
    exec)
      dir=$(stack_bin_dir debug)
      if [ "$1" = --bin-dir ]; then dir=$2; shift 2; fi
      service=$1
      shift
      exec env "$@" "$dir/$service"
      ;;
    nats)
      server=$(stack_nats_server) || { echo "no nats-server: apt-get install nats-server, or set NATS_SERVER_BIN" >&2; exit 1; }
      mkdir -p "$2"
      exec "$server" -js -sd "$2" -a 127.0.0.1 -p "$1"
      ;;
    ready) stack_await "$1" "$3" "$4" "${5:-60}" "ready ($2)" stack_answers "$2" ;;
    listening) stack_await "$1" "$3" "$4" "${5:-10}" "listening on :$2" stack_listens "$2" ;;
    stop) stack_stop "$@" ;;
    bin-dir) stack_bin_dir "${1:-debug}" ;;
    build) stack_build "$@" ;;
    nats-server) stack_nats_server ;;
    *)
      echo "usage: $0 exec|nats|ready|listening|stop|bin-dir|build|nats-server ... (see the top of this file)" >&2
      exit 2
      ;;
  esac
fi
