#!/usr/bin/env bash
# Print the Python interpreter that .venv is built from (the Makefile's PY, unless PY is given):
# 3.11+, able to make a venv with pip, with its C headers (make native compiles against them).
#
# The distribution's python3 comes first when it qualifies: Debian
# (like most distributions) builds CPython with profile-guided optimisation and LTO and links
# libpython statically, which runs meshgate's Python ~15% faster per request than a default
# pyenv or source build (shared libpython, no PGO). Then any python3 on PATH.
set -euo pipefail

usable() {
    "$1" - <<'PY' >/dev/null 2>&1
import ensurepip, os, sys, sysconfig, venv  # noqa: F401
headers = os.path.join(sysconfig.get_paths()["include"], "Python.h")  # for make native (mypyc)
raise SystemExit(0 if sys.version_info >= (3, 11) and os.path.exists(headers) else 1)
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
