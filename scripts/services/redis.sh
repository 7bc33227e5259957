#!/usr/bin/env bash
# Redis for the test suite: redis-server on 127.0.0.1 (default port 26379, MESHGATE_REDIS_PORT
# overrides), no persistence, daemonized with its pidfile and log in the state dir.
#
# usage: redis.sh start|stop|status|restart   (start prints the URL on stdout)
set -euo pipefail
SERVICE_NAME=redis
# shellcheck source=scripts/services/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REDIS_STATE_DIR="$SERVICES_DIR/redis"
REDIS_PIDFILE="$REDIS_STATE_DIR/redis.pid"
REDIS_LOG="$REDIS_STATE_DIR/redis.log"
REDIS_PID_MARKER="redis-server"
REDIS_START_TIMEOUT=20

# A PING over raw TCP: no dependency on redis-cli.
redis_ping() {
  # shellcheck disable=SC2016  # expanded by the inner bash
  timeout 3 bash -c '
    exec 3<>"/dev/tcp/$0/$1" || exit 1
    printf "PING\r\n" >&3
    IFS= read -r reply <&3
    [[ "$reply" == "+PONG"* ]]
  ' "$SERVICES_HOST" "$REDIS_PORT" 2>/dev/null
}

svc_start() {
  local pid
  if pid="$(live_pid "$REDIS_PIDFILE" "$REDIS_PID_MARKER")" && redis_ping; then
    log "already running (pid $pid) on $SERVICES_HOST:$REDIS_PORT"
    echo "$REDIS_URL"
    return 0
  fi
  if [[ -n "${pid:-}" ]]; then
    log "pid $pid is alive but does not answer PING; restarting it"
    stop_pid "$REDIS_PIDFILE" "$REDIS_PID_MARKER" 10
  fi
  ensure_binary redis-server redis-server
  require_free_port "$REDIS_PORT" redis
  mkdir -p "$REDIS_STATE_DIR"
  # Keep the previous run's log for post-mortems.
  [[ -s "$REDIS_LOG" ]] && mv -f "$REDIS_LOG" "$REDIS_LOG.1"
  log "starting on $SERVICES_HOST:$REDIS_PORT (log: $REDIS_LOG)"
  # Errors before redis opens its --logfile go to stdout, hence the redirect to the same file.
  # shellcheck disable=SC2094
  if ! redis-server --bind "$SERVICES_HOST" --port "$REDIS_PORT" --protected-mode yes \
      --daemonize yes --pidfile "$REDIS_PIDFILE" --logfile "$REDIS_LOG" --dir "$REDIS_STATE_DIR" \
      --save '' --appendonly no --databases 16 </dev/null >>"$REDIS_LOG" 2>&1; then
    fail_with_log "$REDIS_LOG" "redis-server refused to start"
  fi
  local deadline=$((SECONDS + REDIS_START_TIMEOUT))
  until redis_ping; do
    if ((SECONDS >= deadline)); then
      fail_with_log "$REDIS_LOG" "redis did not answer PING on $SERVICES_HOST:$REDIS_PORT within ${REDIS_START_TIMEOUT}s"
    fi
    sleep 0.1
  done
  # The daemon writes its pidfile just after it starts listening.
  until pid="$(live_pid "$REDIS_PIDFILE" "$REDIS_PID_MARKER" 2>/dev/null)"; do
    ((SECONDS < deadline)) || fail_with_log "$REDIS_LOG" "redis answers but wrote no pidfile"
    sleep 0.1
  done
  log "ready (pid $pid)"
  echo "$REDIS_URL"
}

svc_stop() {
  stop_pid "$REDIS_PIDFILE" "$REDIS_PID_MARKER" 20
}

svc_status() {
  local pid
  if pid="$(live_pid "$REDIS_PIDFILE" "$REDIS_PID_MARKER" 2>/dev/null)"; then
    if redis_ping; then
      echo "redis: running (pid $pid) $REDIS_URL"
      return 0
    fi
    echo "redis: running (pid $pid) but not answering PING on $SERVICES_HOST:$REDIS_PORT"
    return 1
  fi
  echo "redis: stopped"
  return 3
}

dispatch "$@"
