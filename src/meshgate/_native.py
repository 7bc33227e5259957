"""Which engine runs: the mypyc-compiled request path, or its Python source.

``make native`` (``scripts/build_native.py``) compiles ``NATIVE_MODULES`` in place: a C
extension beside each ``.py``, which the import system prefers, and one shared library
(``meshgate_native__mypyc``) beside the package.  It then writes ``BUILD_RECORD``: the path, size
and modification time of every ``.py`` file of the package at that moment.

``choose()`` runs when ``meshgate`` is imported, before any engine module.  The compiled
modules are used only when all of them are present and no source file of the package changed
since the build (compiled code inlines what it knows of the modules it imports, so any change
counts).  Otherwise — or with ``MESHGATE_PURE_PYTHON=1`` — a finder placed first on
``sys.meta_path`` loads every one of them from source: all or none, because compiled modules
call each other directly and must not meet an interpreted copy of a sibling.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import logging
import os
import sys
from collections.abc import Sequence
from importlib.abc import MetaPathFinder
from pathlib import Path
from types import ModuleType

PACKAGE_DIR = Path(__file__).resolve().parent
BUILD_RECORD = PACKAGE_DIR / "_native_build.json"
PURE_ENV = "MESHGATE_PURE_PYTHON"

# The request path: proxy/http and proxy/filters, and the per-request code of the three plugins
# of the plugins bench.  Left out: the balancer and the pool (tests hand the engine stand-ins
# for them) and the router modules (their dataclasses fail to import compiled).  A compiled
# class whose base is interpreted (a plugin handler) has a weak-reference slot that mypyc does
# not clear; scripts/native_setup.py mends the generated C (see there).
NATIVE_MODULES = (
    "meshgate.proxy.http.server",
    "meshgate.proxy.http.server_base",
    "meshgate.proxy.http.heads",
    "meshgate.proxy.http.request",
    "meshgate.proxy.http.dispatch",
    "meshgate.proxy.http.exchange",
    "meshgate.proxy.http.exchange_base",
    "meshgate.proxy.http.upstream",
    "meshgate.proxy.http.errors",
    "meshgate.proxy.filters.flow",
    "meshgate.proxy.filters.context",
    "meshgate.proxy.filters.runner",
    "meshgate.proxy.filters.chain",
    "meshgate.proxy.filters.headers",
    "meshgate.proxy.http.write_batch",
    "meshgate.plugins._shared.facts",
    "meshgate.plugins._auth",
    "meshgate.plugins.key_auth.handler",
    "meshgate.plugins.rate_limiting.handler",
    "meshgate.plugins.rate_limiting.shared_counters",
    "meshgate.plugins.prometheus.handler",
    "meshgate.plugins.prometheus.pending",
)

# Hand-written C beside the compiled modules, built with them (a ``.c`` beside the module's
# ``.py`` users, no ``.py`` of its own); callers use it only when ``engine`` is "compiled".
NATIVE_EXTENSIONS = ("meshgate.plugins.rate_limiting.counter_kernel",)

engine = "interpreted"  # what ``choose`` decided: "compiled" or "interpreted"
reason = "not built (make native)"


def source_of(module: str) -> Path:
    path = PACKAGE_DIR.parent.joinpath(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def compiled_of(module: str) -> Path | None:
    """The C extension built for ``module`` (for this interpreter), if there is one."""
    source = source_of(module)
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = source.with_name(source.stem + suffix)
        if candidate.exists():
            return candidate
    return None


def source_files() -> dict[str, list[int]]:
    """Every ``.py`` and ``.c`` of the package: relative path -> [size, mtime in ns]."""
    files: dict[str, list[int]] = {}
    for path in sorted([*PACKAGE_DIR.rglob("*.py"), *PACKAGE_DIR.rglob("*.c")]):
        stat = path.stat()
        files[path.relative_to(PACKAGE_DIR).as_posix()] = [stat.st_size, stat.st_mtime_ns]
    return files


def _stale() -> str | None:
    """Why the compiled modules must not be used; None when they may."""
    try:
        recorded = json.loads(BUILD_RECORD.read_text())["sources"]
    except (OSError, ValueError, KeyError, TypeError):
        return "no readable build record"
    built = (*NATIVE_MODULES, *NATIVE_EXTENSIONS)
    missing = [module for module in built if compiled_of(module) is None]
    if missing:
        return f"{missing[0]} is not compiled for this interpreter"
    if recorded != source_files():
        return "sources changed since the build (make native)"
    return None


class SourceFirst(MetaPathFinder):
    """Finds ``names`` as their ``.py`` files, ahead of any compiled extension."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = frozenset(names)

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.names:
            return None
        return importlib.util.spec_from_file_location(fullname, source_of(fullname))


def choose() -> None:
    """Decide once, before the engine is imported (see the module docstring)."""
    global engine, reason
    if not any(compiled_of(module) is not None for module in NATIVE_MODULES):
        return  # nothing compiled here: the sources are all there is
    if os.environ.get(PURE_ENV, "").lower() in ("1", "true", "yes"):
        stale: str | None = f"{PURE_ENV} is set"
    else:
        stale = _stale()
    if stale is None:
        engine, reason = "compiled", "built by make native"
        return
    reason = stale
    sys.meta_path.insert(0, SourceFirst(NATIVE_MODULES))
    if not stale.startswith(PURE_ENV):
        logging.getLogger("meshgate").warning(
            "running the interpreted engine: the compiled one is stale (%s)", stale
        )
