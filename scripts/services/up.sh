#!/usr/bin/env bash
# Start PostgreSQL, Redis and Kafka for the test suite (idempotent: running, healthy services are
# left alone) and print the env exports on stdout; progress goes to stderr. Typical use:
#   eval "$(scripts/services/up.sh)"
set -euo pipefail
# shellcheck source=scripts/services/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Install every missing Debian package in one apt run, before the services start in parallel
# (concurrent apt-get calls would fight over the dpkg lock).
missing_packages=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || [[ -n "${MESHGATE_PG_BIN:-}" ]] ||
  missing_packages+=(postgresql)
command -v redis-server >/dev/null || missing_packages+=(redis-server)
command -v java >/dev/null || [[ -n "${JAVA:-}" ]] || missing_packages+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || missing_packages+=(maven)
if ! command -v kcat >/dev/null && [[ "${MESHGATE_SKIP_KCAT:-0}" != 1 ]]; then
  missing_packages+=(kcat)
fi
if ((${#missing_packages[@]})); then
  apt_install "${missing_packages[@]}"
fi

started=$SECONDS
# Kafka is the slow one: start it in the background while the other two come up.
"$SERVICES_SCRIPT_DIR/kafka.sh" start >/dev/null &
kafka_job=$!
failed=()
"$SERVICES_SCRIPT_DIR/postgres.sh" start >/dev/null || failed+=(postgres)
"$SERVICES_SCRIPT_DIR/redis.sh" start >/dev/null || failed+=(redis)
wait "$kafka_job" || failed+=(kafka)
if ((${#failed[@]})); then
  die "failed to start: ${failed[*]} (logs under $SERVICES_DIR)"
fi
log "all services up in $((SECONDS - started))s (state: $SERVICES_DIR)"
"$SERVICES_SCRIPT_DIR/env.sh"
