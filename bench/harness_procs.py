"""Start, probe, measure and stop the servers of one bench run.

Every process is started in its own session so a Ctrl-C in the terminal reaches only the
harness, which then stops each server by its PID (and that PID's process group, for the
workers nginx or meshgate fork). CPU time is read from /proc for a process and its descendants.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import resource
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


class StartError(RuntimeError):
    """A server did not come up; the message says why (exit status, log tail)."""


def child_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment plus ``extra``, for a system started in its own folder:
    relative ``PYTHONPATH`` entries are made absolute first (``PYTHONPATH=other/src`` would
    otherwise name nothing from the child's working directory, and the child would silently
    run the default tree)."""
    merged = {**os.environ, **(extra or {})}
    path = merged.get("PYTHONPATH")
    if path:
        merged["PYTHONPATH"] = os.pathsep.join(
            os.path.abspath(entry) if entry else entry for entry in path.split(os.pathsep)
        )
    return merged


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def http_get(
    port: int, path: str, timeout_s: float = 2.0, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@dataclass(frozen=True)
class CpuTimes:
    user_s: float
    sys_s: float


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 2 (comm) may hold spaces and parentheses: split after its closing one.
    return text[text.rindex(")") + 2 :].split()


def process_tree(root_pid: int) -> list[int]:
    """``root_pid`` and every live descendant."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, pending = [], [root_pid]
    while pending:
        pid = pending.pop()
        tree.append(pid)
        pending.extend(children.get(pid, []))
    return tree


def tree_cpu_times(pids: list[int]) -> CpuTimes:
    """User and system CPU seconds of ``pids`` (all threads of each), as now."""
    user_ticks = sys_ticks = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:
            user_ticks += int(fields[11])
            sys_ticks += int(fields[12])
    return CpuTimes(user_ticks / CLOCK_TICKS_PER_S, sys_ticks / CLOCK_TICKS_PER_S)


def cpu_ticks() -> list[int]:
    """The machine's CPU ticks since boot: user nice system idle iowait irq softirq steal."""
    return [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]


def machine_busy_s() -> float:
    """CPU seconds all cores spent on anything but idle and I/O wait since boot (incl. steal)."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = cpu_ticks()
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS_PER_S


def own_and_reaped_children_cpu_s() -> float:
    """CPU seconds of this process plus its reaped children (wrk, once it has exited)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self) -> str:
        return _log_tail(self.log_path)


@dataclass
class Supervisor:
    """Owns every server process of a run; ``stop_all`` ends them whatever happened."""

    servers: list[Server] = field(default_factory=list)

    def start(
        self,
        name: str,
        argv: list[str],
        port: int,
        workdir: Path,
        env: dict[str, str] | None = None,
        ready_timeout_s: float = 30.0,
    ) -> Server:
        log_path = workdir / f"{name}.log"
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                argv,
                cwd=workdir,
                env=child_environment(env),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        server = Server(name, port, process, log_path)
        self.servers.append(server)
        try:
            self._wait_ready(server, ready_timeout_s)
        except StartError:
            self.stop(server)
            raise
        return server

    def _wait_ready(self, server: Server, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            status = server.process.poll()
            if status is not None:
                raise StartError(
                    f"{server.name} exited with status {status} before answering on "
                    f"127.0.0.1:{server.port}; log tail:\n{server.log_tail()}"
                )
            try:
                http_get(server.port, "/", timeout_s=1.0)
                return
            except (OSError, http.client.HTTPException):
                time.sleep(0.05)
        raise StartError(
            f"{server.name} did not answer on 127.0.0.1:{server.port} within {timeout_s:g} s; "
            f"log tail:\n{server.log_tail()}"
        )

    def stop(self, server: Server, grace_s: float = 5.0) -> None:
        process = server.process
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                process.wait(timeout=grace_s)
        # Workers forked by the server share its process group, whose id is the server's PID.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        if server in self.servers:
            self.servers.remove(server)

    def stop_all(self) -> None:
        for server in reversed(list(self.servers)):
            self.stop(server)
