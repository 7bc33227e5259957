#!/usr/bin/env bash
# A separate single-node Kafka (KRaft) for tests/benches that must not touch the shared broker,
# e.g. to kill it: the same broker as kafka.sh with its own state dir and ports.
#
# usage: kafka-instance.sh STATE_DIR PORT CONTROLLER_PORT start|stop|status|restart
#   start prints the bootstrap servers on stdout; the PID is in STATE_DIR/kafka/kafka.pid.
# Downloads are shared with kafka.sh (cache dir); kcat is not installed from here.
set -euo pipefail
if (($# != 4)); then
  echo "usage: $0 STATE_DIR PORT CONTROLLER_PORT start|stop|status|restart" >&2
  exit 2
fi
state_dir="$1" port="$2" controller_port="$3" action="$4"
mkdir -p "$state_dir"
MESHGATE_SERVICES_DIR="$(cd "$state_dir" && pwd)" MESHGATE_KAFKA_PORT="$port" \
  MESHGATE_KAFKA_CONTROLLER_PORT="$controller_port" MESHGATE_SKIP_KCAT=1 \
  exec "$(dirname "${BASH_SOURCE[0]}")/kafka.sh" "$action"
