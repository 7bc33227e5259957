#!/usr/bin/env bash
# PostgreSQL for the test suite: a private cluster in the state dir, listening on 127.0.0.1 only
# (default port 25432, MESHGATE_PG_PORT overrides), trust auth, database and role `meshgate`.
#
# usage: postgres.sh start|stop|status|restart   (start prints the DSN on stdout)
set -euo pipefail
SERVICE_NAME=postgres
# shellcheck source=scripts/services/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PG_STATE_DIR="$SERVICES_DIR/postgres"
PG_START_TIMEOUT=60

# The server user gets real paths: $PG_STATE_DIR may be a symlink out of an unreachable tree.
resolve_paths() {
  local real_dir="$PG_STATE_DIR"
  [[ -L "$PG_STATE_DIR" ]] && real_dir="$(readlink -f "$PG_STATE_DIR")"
  PG_DATA="$real_dir/data"
  PG_LOG="$real_dir/postgres.log"
}
resolve_paths

find_pg_bin() {
  local candidate
  if [[ -n "${MESHGATE_PG_BIN:-}" ]]; then
    echo "$MESHGATE_PG_BIN"
    return 0
  fi
  # Highest installed major version first.
  for candidate in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -t/ -k5 -n -r); do
    [[ -x "$candidate/initdb" && -x "$candidate/pg_ctl" ]] && { echo "$candidate"; return 0; }
  done
  return 1
}

ensure_pg_installed() {
  if ! PG_BIN="$(find_pg_bin)"; then
    apt_install postgresql
    PG_BIN="$(find_pg_bin)" || die "postgresql installed but no /usr/lib/postgresql/*/bin/initdb found"
  fi
}

# Postgres refuses to run as root: as root, every server-side command runs as RUN_AS_USER.
run_as_owner() {
  if [[ "$(id -u)" == 0 ]]; then
    runuser -u "$RUN_AS_USER" -- "$@"
  else
    "$@"
  fi
}

ensure_run_as_user() {
  RUN_AS_USER="${MESHGATE_PG_USER:-postgres}"
  [[ "$(id -u)" == 0 ]] || return 0
  if ! id -u "$RUN_AS_USER" >/dev/null 2>&1; then
    log "creating system user $RUN_AS_USER"
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$RUN_AS_USER"
  fi
}

# As root, the data dir must be reachable by the unprivileged server user. When the state dir sits
# under a path that user cannot traverse (e.g. /root/...), keep the cluster under /var/tmp and
# leave a symlink in the state dir, so logs are still found at $PG_STATE_DIR.
prepare_state_dir() {
  mkdir -p "$SERVICES_DIR"
  if [[ "$(id -u)" != 0 ]]; then
    mkdir -p "$PG_STATE_DIR"
    return 0
  fi
  if [[ ! -e "$PG_STATE_DIR" ]]; then
    mkdir -p "$PG_STATE_DIR"
    chown "$RUN_AS_USER:" "$PG_STATE_DIR"
    if ! runuser -u "$RUN_AS_USER" -- test -w "$PG_STATE_DIR"; then
      rmdir "$PG_STATE_DIR"
      local outside
      outside="/var/tmp/meshgate-pg-$(printf '%s' "$SERVICES_DIR" | md5sum | cut -c1-12)"
      log "$RUN_AS_USER cannot reach $SERVICES_DIR; keeping the cluster in $outside"
      # The state dir was wiped, so an old cluster there is stale: stop it and start over.
      if [[ -f "$outside/data/postmaster.pid" ]]; then
        runuser -u "$RUN_AS_USER" -- "$PG_BIN/pg_ctl" stop -D "$outside/data" -m immediate -w >/dev/null 2>&1 || true
      fi
      rm -rf "$outside"
      mkdir -p "$outside"
      chown "$RUN_AS_USER:" "$outside"
      chmod 700 "$outside"
      ln -s "$outside" "$PG_STATE_DIR"
    fi
  fi
  chown -R "$RUN_AS_USER:" "$PG_STATE_DIR/"
}

init_cluster() {
  [[ -s "$PG_DATA/PG_VERSION" ]] && return 0
  log "initdb in $PG_DATA"
  rm -rf "$PG_DATA"
  if ! run_as_owner "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --auth=trust --no-locale -E UTF8 \
      --no-sync >"$PG_STATE_DIR/initdb.log" 2>&1; then
    fail_with_log "$PG_STATE_DIR/initdb.log" "initdb failed"
  fi
  # Test-only cluster: durability off for speed; TCP only (no unix socket path-length limits).
  cat >>"$PG_DATA/postgresql.conf" <<'CONF'

# --- meshgate test settings ---
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
CONF
}

server_pid() {
  local pid
  pid="$(head -n 1 "$PG_DATA/postmaster.pid" 2>/dev/null | tr -dc '0-9')" || return 1
  pid_matches "$pid" "$PG_DATA" || pid_matches "$pid" postgres || return 1
  echo "$pid"
}

# pg_ctl discards a stale postmaster.pid by itself, except after a SIGKILL of the postmaster: its
# orphaned backends still hold the shared memory for a few seconds, so retry while they exit.
start_server() {
  local attempt
  for attempt in $(seq 1 20); do
    local log_lines_before=0
    [[ -f "$PG_LOG" ]] && log_lines_before="$(wc -l <"$PG_LOG")"
    if run_as_owner "$PG_BIN/pg_ctl" start -D "$PG_DATA" -l "$PG_LOG" -w -t "$PG_START_TIMEOUT" \
        -o "-p $PG_PORT" >/dev/null 2>&1; then
      return 0
    fi
    tail -n "+$((log_lines_before + 1))" "$PG_LOG" 2>/dev/null | grep -q 'lock file "postmaster.pid" already exists' ||
      break
    log "old server processes still hold the data dir (attempt $attempt); retrying"
    sleep 1
  done
  fail_with_log "$PG_LOG" "postgres failed to start"
}

psql_admin() {
  "$PG_BIN/psql" -X -q -h "$SERVICES_HOST" -p "$PG_PORT" -U postgres -d postgres \
    -v ON_ERROR_STOP=1 -tA "$@"
}

healthy() {
  "$PG_BIN/pg_isready" -q -h "$SERVICES_HOST" -p "$PG_PORT" -U meshgate -d meshgate -t 3 &&
    "$PG_BIN/psql" -X -q -h "$SERVICES_HOST" -p "$PG_PORT" -U meshgate -d meshgate -tAc 'select 1' \
      >/dev/null 2>&1
}

ensure_role_and_database() {
  if [[ -z "$(psql_admin -c "select 1 from pg_roles where rolname = 'meshgate'")" ]]; then
    log "creating role meshgate"
    psql_admin -c 'create role meshgate login createdb'
  fi
  if [[ -z "$(psql_admin -c "select 1 from pg_database where datname = 'meshgate'")" ]]; then
    log "creating database meshgate"
    psql_admin -c 'create database meshgate owner meshgate'
  fi
}

svc_start() {
  ensure_pg_installed
  ensure_run_as_user
  if server_pid >/dev/null && healthy; then
    log "already running (pid $(server_pid)) on $SERVICES_HOST:$PG_PORT"
    echo "$PG_DSN"
    return 0
  fi
  prepare_state_dir
  resolve_paths
  init_cluster
  if ! server_pid >/dev/null; then
    require_free_port "$PG_PORT" postgres
    log "starting on $SERVICES_HOST:$PG_PORT (log: $PG_LOG)"
    start_server
  fi
  if ! wait_for_port "$SERVICES_HOST" "$PG_PORT" "$PG_START_TIMEOUT"; then
    fail_with_log "$PG_LOG" "postgres is running but not listening on $SERVICES_HOST:$PG_PORT (port changed? run: $0 restart)"
  fi
  ensure_role_and_database || fail_with_log "$PG_LOG" "could not create role/database meshgate"
  healthy || fail_with_log "$PG_LOG" "postgres started but meshgate@meshgate does not answer"
  log "ready (pid $(server_pid))"
  echo "$PG_DSN"
}

svc_stop() {
  local pid
  if ! pid="$(server_pid)"; then
    log "not running"
    return 0
  fi
  ensure_pg_installed
  ensure_run_as_user
  log "stopping pid $pid"
  if ! run_as_owner "$PG_BIN/pg_ctl" stop -D "$PG_DATA" -m fast -w -t 30 >/dev/null 2>&1; then
    log "pg_ctl stop failed; signalling pid $pid directly"
    kill -TERM "$pid" 2>/dev/null || true
  fi
  local deadline=$((SECONDS + 30))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then
    log "pid $pid still alive after 30s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  log "stopped"
}

svc_status() {
  local pid
  if pid="$(server_pid)"; then
    PG_BIN="$(find_pg_bin)" || true
    if [[ -n "${PG_BIN:-}" ]] && healthy; then
      echo "postgres: running (pid $pid) $PG_DSN"
      return 0
    fi
    echo "postgres: running (pid $pid) but not answering on $SERVICES_HOST:$PG_PORT"
    return 1
  fi
  echo "postgres: stopped"
  return 3
}

dispatch "$@"
