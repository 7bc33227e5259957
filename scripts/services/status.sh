#!/usr/bin/env bash
# One status line per service; exits non-zero unless all three are running and answering.
set -uo pipefail
dir="$(dirname "${BASH_SOURCE[0]}")"
rc=0
for service in postgres redis kafka; do
  "$dir/$service.sh" status || rc=1
done
exit "$rc"
