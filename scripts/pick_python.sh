#!/usr/bin/env bash
# Print the Python interpreter that .venv is built from (the Makefile's PY, unless PY is given).
#
# The distribution's python3 comes first when it is 3.11+ and can make a venv with pip: Debian
# (like most distributions) builds CPython with profile-guided optimisation and LTO and links
# libpython statically, which runs meshgate's Python ~15% faster per request than a default
# pyenv or source build (shared libpython, no PGO). Then any python3 on PATH.
set -euo pipefail

usable() {
    "$1" - <<'PY' >/dev/null 2>&1
import ensurepip, sys, venv  # noqa: F401
raise SystemExit(0 if sys.version_info >= (3, 11) else 1)
PY
}

for candidate in /usr/bin/python3 "$(command -v python3 || true)"; do
    if [[ -n "$candidate" && -x "$candidate" ]] && usable "$candidate"; then
        echo "$candidate"
        exit 0
    fi
done
echo "no Python 3.11+ with venv and ensurepip found" >&2
exit 1
