#!/usr/bin/env bash
# Stop Kafka, Redis and PostgreSQL started by up.sh (by PID; waits for each to exit).
# State and logs stay in the state dir; delete it for a clean slate.
set -euo pipefail
# shellcheck source=scripts/services/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

"$SERVICES_SCRIPT_DIR/kafka.sh" stop &
kafka_job=$!
failed=()
"$SERVICES_SCRIPT_DIR/redis.sh" stop || failed+=(redis)
"$SERVICES_SCRIPT_DIR/postgres.sh" stop || failed+=(postgres)
wait "$kafka_job" || failed+=(kafka)
((${#failed[@]} == 0)) || die "failed to stop: ${failed[*]}"
