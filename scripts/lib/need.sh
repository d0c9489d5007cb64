# The one home for "this step needs that tool": sourced by the scripts that run tests.
#
#   . scripts/lib/need.sh
#   need iptables:iptables nginx:nginx-light python3:python3
#
# Each argument is COMMAND:DEBIAN-PACKAGE, COMMAND a name or an absolute path (a file or
# folder the package installs). A command found on the PATH (or in /usr/sbin, /sbin: Debian
# puts daemons there) is used as it is; the packages of the missing ones are
# installed with apt-get in one go when we are root on a machine that has it. A command
# still missing after that is an error that names the package to install: a test step
# never quietly skips itself for want of a tool.
#
#   have COMMAND        where COMMAND is (its path), or nothing and a non-zero status
#   skip_or_fail WHY    under CI=true an error (a skipped step fails CI); elsewhere a line
#                       saying what was skipped and why, and status 0

have() {
  local found
  case $1 in /*) [ -e "$1" ] && { echo "$1"; return 0; }; return 1 ;; esac
  found=$(command -v "$1" 2>/dev/null) && { echo "$found"; return 0; }
  for dir in /usr/sbin /sbin; do
    [ -x "$dir/$1" ] && { echo "$dir/$1"; return 0; }
  done
  return 1
}

need() {
  local pair tool missing=() packages=()
  for pair in "$@"; do
    tool=${pair%%:*}
    have "$tool" >/dev/null || { missing+=("$tool"); packages+=("${pair#*:}"); }
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    printf '\n== installing %s (for %s) ==\n' "${packages[*]}" "${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null || true
    apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null ||
      echo "apt-get install ${packages[*]} failed" >&2
  fi
  local still=()
  for pair in "$@"; do
    have "${pair%%:*}" >/dev/null || still+=("${pair%%:*} (Debian package ${pair#*:})")
  done
  if [ ${#still[@]} -gt 0 ]; then
    echo "missing, and not installed here: ${still[*]}: install it, then run again" >&2
    return 1
  fi
}

skip_or_fail() {
  if [ "${CI:-}" = true ]; then
    echo "FAILED: $* (under CI=true nothing is skipped)" >&2
    return 1
  fi
  echo "skipped: $*"
}
