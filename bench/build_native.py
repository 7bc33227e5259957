"""The opt-in compiled engine: a copy of ``src`` whose engine modules are built with mypyc.

Copies ``src/meshgate`` to ``build/native/src`` and compiles ``NATIVE_MODULES`` there in place
(C extensions beside the ``.py`` files, which the import then prefers). ``src`` itself is never
touched, so tests and ``meshgate run`` stay plain Python. Run the bench against the copy with
``PYTHONPATH=$PWD/build/native/src .venv/bin/python bench/run.py ...`` (every meshgate the
harness starts inherits it) or ``bench/events_bench.py --compare-src build/native/src``.

Not the default (bench/README.md, "Compiling the hot path with mypyc", says why); `make test`
runs the request-path tests against it (`make test-native`).

    .venv/bin/python bench/build_native.py
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "build" / "native"
COPY = OUT / "src"
GROUP = "meshgate_native"  # the shared library: build/native/src/meshgate_native__mypyc*.so

# proxy/http and proxy/filters on the request path. Left out: the balancer and the pool
# (tests hand the engine stand-ins for them), router modules (their dataclasses fail to import
# compiled) and the plugins (compiled, a full suite run crashes in the garbage collector).
NATIVE_MODULES = (
    "meshgate/proxy/http/server.py",
    "meshgate/proxy/http/server_base.py",
    "meshgate/proxy/http/heads.py",
    "meshgate/proxy/http/request.py",
    "meshgate/proxy/http/dispatch.py",
    "meshgate/proxy/http/exchange.py",
    "meshgate/proxy/http/exchange_base.py",
    "meshgate/proxy/http/upstream.py",
    "meshgate/proxy/http/errors.py",
    "meshgate/proxy/filters/flow.py",
    "meshgate/proxy/filters/context.py",
    "meshgate/proxy/filters/runner.py",
    "meshgate/proxy/filters/chain.py",
    "meshgate/proxy/filters/headers.py",
)


def build() -> None:
    shutil.rmtree(OUT, ignore_errors=True)
    shutil.copytree(REPO / "src" / "meshgate", COPY / "meshgate",
                    ignore=shutil.ignore_patterns("__pycache__", "*.so"))  # fmt: skip
    setup = (
        "from setuptools import setup\n"
        "from mypyc.build import mypycify\n"
        f"modules = {list(NATIVE_MODULES)!r}\n"
        "setup(name='meshgate-native', ext_modules=mypycify(\n"
        f"    ['--config-file', {str(REPO / 'pyproject.toml')!r}, *modules],\n"
        f"    opt_level='3', group_name={GROUP!r}, target_dir={str(OUT / 'c')!r}),\n"
        f"    script_args=['build_ext', '--inplace', '--build-temp', {str(OUT / 'tmp')!r},\n"
        f"                 '--build-lib', {str(OUT / 'lib')!r}])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", setup], cwd=COPY, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-6000:] + done.stderr[-6000:])
        raise SystemExit(f"mypyc build failed (exit {done.returncode})")


def main() -> int:
    print(f"compiling {len(NATIVE_MODULES)} modules with mypyc into {COPY} (about a minute)")
    build()
    print(f"done: PYTHONPATH={COPY.relative_to(REPO)} runs meshgate with them")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
