"""Compile the engine's request path with mypyc, in place (``make native``).

Builds ``meshgate._native.NATIVE_MODULES`` into C extensions beside their ``.py`` files in
``src`` and the shared ``meshgate_native__mypyc`` library beside the package, then writes the
build record that ``meshgate._native.choose`` checks on every import (a source changed since
the build: the interpreted engine runs, with a warning). Everything it makes is git-ignored;
``--clean`` removes it. Without a C compiler or the interpreter's headers the build fails and
the sources run, as before. ``scripts/native_setup.py`` is the setuptools step (and mends
mypyc's weak-reference slots, see there).

    .venv/bin/python scripts/build_native.py [--clean]
"""

from __future__ import annotations

import argparse
import importlib.machinery
import json
import subprocess
import sys
from pathlib import Path

from meshgate import _native

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
WORK = REPO / "build" / "native"
GROUP = "meshgate_native"  # the shared library: src/meshgate_native__mypyc*.so


def clean() -> None:
    """Remove the extensions, the shared library and the build record."""
    _native.BUILD_RECORD.unlink(missing_ok=True)
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:  # also modules no longer listed
        for built in _native.PACKAGE_DIR.rglob(f"*{suffix}"):
            built.unlink()
    for shared in SRC.glob(f"{GROUP}__mypyc*"):
        shared.unlink()


def build() -> None:
    clean()  # a failed build leaves nothing half-made behind
    modules = [_native.source_of(m).relative_to(SRC).as_posix() for m in _native.NATIVE_MODULES]
    extensions = [
        (m, _native.source_of(m).with_suffix(".c").relative_to(SRC).as_posix())
        for m in _native.NATIVE_EXTENSIONS
    ]
    plan = {
        "config": str(REPO / "pyproject.toml"),
        "modules": modules,
        "c": extensions,
        "group": GROUP,
        "c_dir": str(WORK / "c"),
        "tmp_dir": str(WORK / "tmp"),
        "lib_dir": str(WORK / "lib"),
    }
    WORK.mkdir(parents=True, exist_ok=True)
    plan_path = WORK / "plan.json"
    plan_path.write_text(json.dumps(plan, indent=1))
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "native_setup.py"), str(plan_path)],
        cwd=SRC,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        clean()
        sys.stderr.write(done.stdout[-6000:] + done.stderr[-6000:])
        raise SystemExit(f"mypyc build failed (exit {done.returncode}): the sources will run")
    record = {"mypyc_group": GROUP, "sources": _native.source_files()}
    _native.BUILD_RECORD.write_text(json.dumps(record, indent=0) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clean", action="store_true", help="remove the compiled engine")
    options = parser.parse_args(argv)
    if options.clean:
        clean()
        print("removed the compiled engine: the sources run")
        return 0
    print(f"compiling {len(_native.NATIVE_MODULES)} engine modules with mypyc (about a minute)")
    build()
    print("done: meshgate runs the compiled engine (MESHGATE_PURE_PYTHON=1: the sources)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
