#!/usr/bin/env bash
# Print the environment the service-backed tests read, as one `export` line for eval:
#   eval "$(scripts/services/env.sh)"
# It only formats addresses (honouring the MESHGATE_*_PORT overrides); it starts nothing.
set -euo pipefail
# shellcheck source=scripts/services/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

printf 'export MESHGATE_TEST_PG_DSN=%q MESHGATE_TEST_REDIS_URL=%q MESHGATE_TEST_KAFKA_BOOTSTRAP=%q\n' \
  "$PG_DSN" "$REDIS_URL" "$KAFKA_BOOTSTRAP"
