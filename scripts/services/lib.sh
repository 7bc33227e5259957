# shellcheck shell=bash
# Shared helpers for the backing-service scripts (PostgreSQL, Redis, Kafka) used by the test suite.
#
# Sourced, not executed. Provides: the state/cache directory layout, the loopback ports (all
# overridable by environment), logging, pidfile handling, port waiting, stop-by-PID and
# "install this Debian package only if its binary is missing". Sets no shell options itself.

# The variables below are read by the scripts that source this file.
# shellcheck disable=SC2034
SERVICES_SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SERVICES_SCRIPT_DIR/../.." && pwd)"

# State (data, pidfiles, logs) lives in the repo by default; downloads are cached outside it so
# wiping the state dir does not re-download Kafka.
SERVICES_DIR="${MESHGATE_SERVICES_DIR:-$REPO_ROOT/.services}"
SERVICES_CACHE_DIR="${MESHGATE_SERVICES_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/meshgate-services}"

SERVICES_HOST=127.0.0.1
# Below 32768: outside Linux's ephemeral range (32768-60999), where any outgoing connection (the
# Kafka starting beside them, a test's client) may hold the port at the moment a service binds it.
PG_PORT="${MESHGATE_PG_PORT:-25432}"
REDIS_PORT="${MESHGATE_REDIS_PORT:-26379}"
KAFKA_PORT="${MESHGATE_KAFKA_PORT:-29092}"
KAFKA_CONTROLLER_PORT="${MESHGATE_KAFKA_CONTROLLER_PORT:-29093}"

PG_DSN="postgresql://meshgate@$SERVICES_HOST:$PG_PORT/meshgate"
REDIS_URL="redis://$SERVICES_HOST:$REDIS_PORT/0"
KAFKA_BOOTSTRAP="$SERVICES_HOST:$KAFKA_PORT"

# Every message goes to stderr so stdout stays clean for `eval "$(up.sh)"`.
log() { printf '[services:%s] %s\n' "${SERVICE_NAME:-all}" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Print the last lines of a log file to stderr (used whenever a start fails).
show_log_tail() {
  local log_file="$1" lines="${2:-60}"
  if [[ -s "$log_file" ]]; then
    log "---- last $lines lines of $log_file ----"
    tail -n "$lines" "$log_file" >&2 || true
    log "---- end of $log_file ----"
  else
    log "(log $log_file is empty or missing)"
  fi
}

fail_with_log() {
  local log_file="$1"; shift
  log "ERROR: $*"
  show_log_tail "$log_file"
  exit 1
}

port_open() {
  local host="$1" port="$2"
  timeout 2 bash -c "exec 3<>/dev/tcp/$host/$port" 2>/dev/null
}

# True when the PID is running and its command line contains the given marker (guards against a
# stale pidfile whose PID was reused by an unrelated process).
pid_matches() {
  local pid="$1" marker="$2"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  [[ -r "/proc/$pid/cmdline" ]] || return 0
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$marker"
}

read_pidfile() {
  local pidfile="$1"
  [[ -s "$pidfile" ]] || return 1
  head -n 1 "$pidfile" | tr -dc '0-9'
}

# Echo the live PID recorded in the pidfile, or fail (and drop the pidfile if it is stale).
live_pid() {
  local pidfile="$1" marker="$2" pid
  pid="$(read_pidfile "$pidfile")" || return 1
  if pid_matches "$pid" "$marker"; then
    echo "$pid"
    return 0
  fi
  log "removing stale pidfile $pidfile (pid ${pid:-?} is gone or is not this service)"
  rm -f "$pidfile"
  return 1
}

# Wait for a TCP port; give up early if the watched process dies.
wait_for_port() {
  local host="$1" port="$2" timeout_s="$3" pid="${4:-}"
  local deadline=$((SECONDS + timeout_s))
  while ((SECONDS < deadline)); do
    port_open "$host" "$port" && return 0
    if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
      return 1
    fi
    sleep 0.2
  done
  return 1
}

# SIGTERM, wait up to timeout_s for the exit, then SIGKILL. Removes the pidfile.
stop_pid() {
  local pidfile="$1" marker="$2" timeout_s="${3:-30}" pid
  if ! pid="$(live_pid "$pidfile" "$marker")"; then
    log "not running"
    rm -f "$pidfile"
    return 0
  fi
  log "stopping pid $pid"
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + timeout_s))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
    sleep 0.2
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "pid $pid ignored SIGTERM for ${timeout_s}s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  fi
  rm -f "$pidfile"
  log "stopped"
}

# Refuse to start when something that is not ours already listens on the port.
require_free_port() {
  local port="$1" what="$2"
  if port_open "$SERVICES_HOST" "$port"; then
    die "$SERVICES_HOST:$port is already in use by a process this state dir does not know; cannot start $what. A leftover from a deleted state dir? Find it with: ss -ltnp 'sport = :$port'. Or pick other ports with the MESHGATE_*_PORT variables."
  fi
}

_APT_UPDATED=0
# apt_install PACKAGE... : non-interactive install, with one `apt-get update` per process.
apt_install() {
  command -v apt-get >/dev/null || die "apt-get not found; install $* by hand"
  [[ "$(id -u)" == 0 ]] || die "need root to apt-get install $* (or install it by hand)"
  export DEBIAN_FRONTEND=noninteractive
  if ((_APT_UPDATED == 0)); then
    log "apt-get update"
    apt-get update -qq >&2 || log "apt-get update failed; trying the install anyway"
    _APT_UPDATED=1
  fi
  log "apt-get install -y $*"
  apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=300 "$@" >&2
}

# ensure_binary BINARY PACKAGE : install PACKAGE only when BINARY is not on PATH.
ensure_binary() {
  local binary="$1" package="$2"
  command -v "$binary" >/dev/null && return 0
  apt_install "$package"
  command -v "$binary" >/dev/null || die "$package installed but $binary is still not on PATH"
}

# Serialise start/stop of one service: several `make test` runs may share one tree. A directory
# holding the owner's PID, not flock: daemons started under an flock'd fd would inherit it and
# hold the lock for their whole life. A lock whose owner died is taken over.
take_service_lock() {
  mkdir -p "$SERVICES_DIR"
  SERVICE_LOCK_DIR="$SERVICES_DIR/.$SERVICE_NAME.lock"
  local deadline=$((SECONDS + 300)) said_waiting=0 holder
  until mkdir "$SERVICE_LOCK_DIR" 2>/dev/null; do
    holder="$(cat "$SERVICE_LOCK_DIR/pid" 2>/dev/null || true)"
    if [[ -n "$holder" ]] && ! kill -0 "$holder" 2>/dev/null; then
      rm -rf "$SERVICE_LOCK_DIR"
      continue
    fi
    # No PID yet: the holder is between its mkdir and its write, or died right there.
    if [[ -z "$holder" && -n "$(find "$SERVICE_LOCK_DIR" -maxdepth 0 -mmin +1 2>/dev/null)" ]]; then
      rm -rf "$SERVICE_LOCK_DIR"
      continue
    fi
    if ((said_waiting == 0)); then
      log "waiting for another start/stop of $SERVICE_NAME (pid ${holder:-?}) to finish"
      said_waiting=1
    fi
    ((SECONDS < deadline)) || die "gave up waiting for $SERVICE_LOCK_DIR (held by pid ${holder:-?})"
    sleep 0.2
  done
  echo "$$" >"$SERVICE_LOCK_DIR/pid"
  trap 'rm -rf "$SERVICE_LOCK_DIR"' EXIT
}

# Common `start|stop|status|restart` dispatcher; the caller defines svc_start/svc_stop/svc_status.
dispatch() {
  local command="${1:-}"
  case "$command" in
    start) take_service_lock && svc_start ;;
    stop) take_service_lock && svc_stop ;;
    status) svc_status ;;
    restart) take_service_lock && svc_stop && svc_start ;;
    *) echo "usage: $0 start|stop|status|restart" >&2; exit 2 ;;
  esac
}
