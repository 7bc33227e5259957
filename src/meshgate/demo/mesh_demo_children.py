"""The processes ``meshgate demo mesh`` starts, and how it stops every one of them.

Each child is a real ``python -m meshgate.cli.main …`` process in its own session (so its
process group is its PID and a Ctrl-C in the terminal reaches only the demo, which then stops
the children in order), with stdout and stderr in ``<dir>/logs/<piece>.log``.  Every PID is
appended to ``<dir>/pids`` (``piece pid`` per line) the moment it exists.  On Linux a child
also gets SIGTERM should the demo itself die without cleaning up (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO

MESHGATE = [sys.executable, "-m", "meshgate.cli.main"]
_PR_SET_PDEATHSIG = 1
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class DemoStopped(Exception):
    """Ctrl-C, SIGTERM or SIGHUP arrived."""


class StopSignals:
    """Records SIGINT/SIGTERM/SIGHUP; the demo's waiting loops call ``check()``, which raises
    ``DemoStopped`` once one arrived.  (Raising from the handler itself could cut short a
    child's start or the clean-up.)"""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, object] = {}

    def install(self) -> None:
        for number in STOP_SIGNALS:
            self._previous[number] = signal.signal(number, self._handle)

    def uninstall(self) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)  # type: ignore[arg-type]  # what signal() returned
        self._previous.clear()

    def _handle(self, _number: int, _frame: object) -> None:
        self.requested = True

    def check(self) -> None:
        if self.requested:
            raise DemoStopped


@dataclass
class Child:
    piece: str  # what the user reads in messages: "control plane", "backend-1 sidecar"
    key: str  # the short name used in file names: "cp", "backend-1"
    process: subprocess.Popen[bytes]
    log_path: Path
    log: IO[bytes]
    stop_first: bool = False  # sidecars: stopped while the control plane still hears them
    reported_exit: bool = False

    @property
    def pid(self) -> int:
        return self.process.pid

    def exited(self) -> int | None:
        return self.process.poll()

    def log_tail(self, lines: int = 12) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.rstrip("\n").splitlines()[-lines:])


def _die_with_parent() -> None:  # pragma: no cover - runs in the forked child
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class Children:
    """Starts the demo's processes and stops them all, newest first."""

    def __init__(self, work_dir: Path, signals: StopSignals) -> None:
        self.work_dir = work_dir
        self.logs_dir = work_dir / "logs"
        self.pids_file = work_dir / "pids"
        self.signals = signals
        self.started: list[Child] = []
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.pids_file.write_text("")

    def start(self, piece: str, key: str, args: list[str], stop_first: bool = False) -> Child:
        log_path = self.logs_dir / f"{key}.log"
        preexec: Callable[[], None] | None = _die_with_parent if sys.platform == "linux" else None
        self.signals.check()  # nothing new starts once the demo is asked to stop
        log = log_path.open("wb")
        try:
            process = subprocess.Popen(
                [*MESHGATE, *args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.work_dir,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                start_new_session=True,
                preexec_fn=preexec,  # no threads here; only prctl
            )
        except OSError:
            log.close()
            raise
        child = Child(piece, key, process, log_path, log, stop_first)
        self.started.append(child)
        with self.pids_file.open("a") as pids:
            pids.write(f"{key} {process.pid}\n")
        return child

    def first_exited(self) -> Child | None:
        return next((c for c in self.started if c.exited() is not None), None)

    def stop_all(self, grace: float = 8.0) -> list[Child]:
        """Stop every child: first those started with ``stop_first`` (the sidecars, so they can
        say goodbye to the control plane), then the rest; each wave gets SIGTERM and ``grace`` seconds, then SIGKILL.  Returns
        the children that had to be killed."""
        killed: list[Child] = []
        first = [c for c in self.started if c.stop_first]
        for wave in (first, [c for c in self.started if not c.stop_first]):
            for child in reversed(wave):
                _signal_group(child, signal.SIGTERM)
            deadline = time.monotonic() + grace
            for child in reversed(wave):
                try:
                    child.process.wait(max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    killed.append(child)
                _signal_group(child, signal.SIGKILL)  # if still there, and what it left behind
                child.process.wait()
                child.log.close()
        return killed


def _signal_group(child: Child, number: signal.Signals) -> None:
    """Signal the child (while it is not reaped its PID is still ours) and its process group."""
    if child.process.poll() is None:
        with suppress(ProcessLookupError):
            os.kill(child.pid, number)
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, number)
