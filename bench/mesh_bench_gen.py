"""Mesh bench, part 1's load generator: the Go one built from ``bench/loadgen`` (or the Python
twin ``mesh_bench_load``), and core pinning for ``--pin``."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from harness_procs import StartError, process_tree

BENCH = Path(__file__).resolve().parent


GO_FALLBACK = Path("/usr/local/go/bin/go")


def find_go() -> str | None:
    found = shutil.which("go")
    if found is None and os.access(GO_FALLBACK, os.X_OK):
        found = str(GO_FALLBACK)
    return found


def generator_argv(kind: str, workdir: Path) -> list[str]:
    """The load generator's command line without its flags; the Go one is built first."""
    if kind == "python":
        return [sys.executable, str(BENCH / "mesh_bench_load.py")]
    go = find_go()
    if go is None:
        raise StartError(f"--generator go: no go on PATH nor at {GO_FALLBACK}")
    binary = workdir / "loadgen"
    env = dict(os.environ, GOFLAGS="-mod=mod", GOTOOLCHAIN="local", CGO_ENABLED="0")
    env.setdefault("GOCACHE", str(Path(tempfile.gettempdir()) / "meshgate-bench-gocache"))
    env.setdefault("GOPATH", str(Path(tempfile.gettempdir()) / "meshgate-bench-gopath"))
    built = subprocess.run(
        [go, "build", "-o", str(binary), "."],
        cwd=BENCH / "loadgen", env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if built.returncode != 0:
        raise StartError(f"go build of bench/loadgen failed:\n{built.stderr}")
    return [str(binary)]


def pin_tree(root_pid: int, cpu: int) -> None:
    """Every thread of ``root_pid`` and its descendants onto core ``cpu``."""
    for pid in process_tree(root_pid):
        for task in Path(f"/proc/{pid}/task").glob("*"):
            with contextlib.suppress(OSError):
                os.sched_setaffinity(int(task.name), {cpu})
