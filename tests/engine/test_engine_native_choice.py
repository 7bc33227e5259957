"""``meshgate._native``: the compiled engine runs only when all of it is built from the sources
as they are; otherwise, or when asked, every compiled module is loaded from source."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from meshgate import _native

PROBE = (
    "import meshgate, meshgate._native as n, meshgate.proxy.http.server as s, "
    "meshgate.proxy.filters.flow as f; print(n.engine, s.__file__.endswith('.py'), "
    "f.__file__.endswith('.py'))"
)


def _probe(**env: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return done.stdout.strip()


def test_the_pure_python_switch_loads_every_engine_module_from_source() -> None:
    assert _probe(MESHGATE_PURE_PYTHON="1") == "interpreted True True"


def test_without_the_switch_the_built_engine_runs_when_it_is_fresh() -> None:
    built = all(_native.compiled_of(m) is not None for m in _native.NATIVE_MODULES)
    env = {key: value for key, value in os.environ.items() if key != "MESHGATE_PURE_PYTHON"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=30
    )
    if built and _native._stale() is None:
        assert done.stdout.strip() == "compiled False False"
    else:
        assert done.stdout.strip() == "interpreted True True"


def test_the_source_first_finder_serves_only_the_engine_modules() -> None:
    finder = _native.SourceFirst(_native.NATIVE_MODULES)
    spec = finder.find_spec("meshgate.proxy.http.server", None)
    assert spec is not None
    assert spec.origin is not None
    assert spec.origin.endswith("proxy/http/server.py")
    assert finder.find_spec("meshgate.proxy.router", None) is None


def test_a_changed_source_makes_the_build_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = tmp_path / "record.json"
    monkeypatch.setattr(_native, "BUILD_RECORD", record)
    assert _native._stale() == "no readable build record"
    sources = _native.source_files()
    record.write_text(json.dumps({"sources": sources}))
    missing = [m for m in _native.NATIVE_MODULES if _native.compiled_of(m) is None]
    if missing:  # not built here: that is the reason, whatever the record says
        stale = _native._stale()
        assert stale is not None
        assert stale.endswith("is not compiled for this interpreter")
        return
    assert _native._stale() is None
    size, mtime = sources["errors.py"]
    sources["errors.py"] = [size, mtime + 1]  # one file touched since the build
    record.write_text(json.dumps({"sources": sources}))
    assert _native._stale() == "sources changed since the build (make native)"
    del sources["errors.py"]
    record.write_text(json.dumps({"sources": sources}))
    assert _native._stale() == "sources changed since the build (make native)"


def test_packages_and_the_c_kernel_are_part_of_the_build() -> None:
    assert (
        _native.source_of("meshgate.plugins._auth").as_posix().endswith("plugins/_auth/__init__.py")
    )
    finder = _native.SourceFirst(_native.NATIVE_MODULES)
    spec = finder.find_spec("meshgate.plugins._auth", None)
    assert spec is not None
    assert spec.submodule_search_locations  # loaded from source, still a package
    kernel = "plugins/rate_limiting/counter_kernel.c"
    assert kernel in _native.source_files()  # an edited kernel makes the build stale
    (module,) = _native.NATIVE_EXTENSIONS
    assert _native.source_of(module).with_suffix(".c").as_posix().endswith(kernel)
