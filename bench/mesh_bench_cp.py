"""Processes of the mesh bench: ``meshgate cp``, sidecar pairs, Mesh API calls, RSS, py-spy.

Every process is owned by a ``harness_procs.Supervisor`` (its own session; stopped by PID).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness_procs import Server, StartError, Supervisor, free_port, http_get

MESHGATE = [sys.executable, "-m", "meshgate.cli.main"]
PY_SPY = Path(sys.executable).parent / "py-spy"


@dataclass
class ControlPlane:
    server: Server
    api_port: int
    dp_port: int
    ca_file: Path
    workdir: Path


@dataclass
class SidecarPair:
    server: Server  # inbound side, in front of the upstream
    client: Server  # outbound side, what the load generator calls
    outbound_port: int


def rss_mb(pid: int) -> float:
    """VmRSS of ``pid`` in MiB (0 when the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def memory_mb(pid: int) -> dict[str, float]:
    """RSS, PSS (shared pages divided among their users) and USS (private pages) of ``pid``
    in MiB, from ``/proc/PID/smaps_rollup`` (zeros when the process is gone)."""
    fields: dict[str, float] = {}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
            name, _, value = line.partition(":")
            fields[name] = int(value.split()[0]) / 1024
    except (OSError, ValueError, IndexError):
        return {"rss": 0.0, "pss": 0.0, "uss": 0.0}
    uss = fields.get("Private_Clean", 0.0) + fields.get("Private_Dirty", 0.0)
    return {"rss": fields.get("Rss", 0.0), "pss": fields.get("Pss", 0.0), "uss": uss}


def client_ports_to(port: int) -> set[int]:
    """Local ports of the TCP sockets (any state) whose peer is 127.0.0.1:``port``."""
    found = set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            local, remote = fields[1], fields[2]
            if int(remote.rsplit(":", 1)[1], 16) == port:
                found.add(int(local.rsplit(":", 1)[1], 16))
    return found


def api(cp: ControlPlane, method: str, path: str, body: Any = None) -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{cp.api_port}{path}", method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=60) as response:
        raw = response.read()
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode()


def _wait_tcp(port: int, process: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StartError(f"process exited ({process.returncode}) before listening on {port}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise StartError(f"nothing listens on 127.0.0.1:{port} after {timeout_s:g} s")


def wait_http_ok(port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    last: object = None
    while time.monotonic() < deadline:
        try:
            last, _ = http_get(port, "/", timeout_s=2)
            if last == 200:
                return
        except (OSError, http.client.HTTPException) as exc:
            last = exc
        time.sleep(0.1)
    raise StartError(f"127.0.0.1:{port} did not answer 200 within {timeout_s:g} s: {last!r}")


def start_control_plane(supervisor: Supervisor, workdir: Path) -> ControlPlane:
    workdir.mkdir(parents=True, exist_ok=True)
    api_port, dp_port = free_port(), free_port()
    ca_file = workdir / "cp-ca.pem"
    argv = [
        *MESHGATE, "cp", "--store", f"sqlite:///{workdir}/cp.db",
        "--api-listen", f"127.0.0.1:{api_port}", "--dp-listen", f"127.0.0.1:{dp_port}",
        "--dp-ca-out", str(ca_file), "--log-level", "warning",
    ]  # fmt: skip
    server = supervisor.start("cp", argv, api_port, workdir)
    _wait_tcp(dp_port, server.process)
    return ControlPlane(server, api_port, dp_port, ca_file, workdir)


def _sidecar_argv(cp: ControlPlane, mesh: str, name: str, extra: list[str]) -> list[str]:
    token_file = cp.workdir / f"{name}.token"
    token_file.write_text(api(cp, "POST", "/tokens/dataplane", {"mesh": mesh, "name": name}))
    return [
        *MESHGATE, "dp", "--role", "sidecar", "--cp", f"https://127.0.0.1:{cp.dp_port}",
        "--token", str(token_file), "--name", name, "--mesh", mesh,
        "--state-dir", str(cp.workdir / f"state-{name}"), "--ca-cert", str(cp.ca_file),
        "--log-level", "warning", *extra,
    ]  # fmt: skip


def start_sidecar_pair(
    supervisor: Supervisor, cp: ControlPlane, mesh: str, mode: str, upstream_port: int
) -> SidecarPair:
    service = f"svc-{mode}"
    inbound_port = free_port()
    server_argv = _sidecar_argv(cp, mesh, f"{mode}-server",
                                ["--inbound", f"{service}:{inbound_port}:http:{upstream_port}"])  # fmt: skip
    log_path = cp.workdir / f"{mode}-server.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            server_argv, cwd=cp.workdir, stdin=subprocess.DEVNULL, stdout=log_file,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    server = Server(f"{mode}-server", inbound_port, process, log_path)
    supervisor.servers.append(server)
    _wait_tcp(inbound_port, process, timeout_s=60)
    outbound_port, client_inbound = free_port(), free_port()
    client_argv = _sidecar_argv(cp, mesh, f"{mode}-client", [
        "--inbound", f"client-{mode}:{client_inbound}:http:{upstream_port}",
        "--outbound", f"{service}:{outbound_port}",
    ])  # fmt: skip
    client = supervisor.start(f"{mode}-client", client_argv, outbound_port, cp.workdir, None, 60)
    return SidecarPair(server, client, outbound_port)


# ---------------------------------------------------------------- py-spy


def start_profiler(pid: int, out: Path) -> subprocess.Popen[bytes] | None:
    binary = str(PY_SPY) if PY_SPY.exists() else shutil.which("py-spy")
    if binary is None:
        print("py-spy not found; no profile", file=sys.stderr)
        return None
    argv = [binary, "record", "-p", str(pid), "-o", str(out), "--format", "raw", "-r", "200",
            "--nonblocking"]  # fmt: skip
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(0.5)
    return process


def stop_profiler(process: subprocess.Popen[bytes] | None) -> str:
    if process is None:
        return "no profiler"
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    try:
        _, stderr = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate()
    return stderr.decode(errors="replace")[-500:]


_LINE_NUMBER = re.compile(r":\d+\)$")


def profile_report(profiler_log: str, raw_file: Path) -> dict[str, Any]:
    """Inclusive and self shares per ``function (file)`` from py-spy's collapsed stacks."""
    if not raw_file.exists():
        return {"error": profiler_log}
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in raw_file.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_short(frame) for frame in stack.split(";")]
        for frame in set(frames):
            inclusive[frame] += count
        own[frames[-1]] += count
    kept = os.environ.get("MESH_BENCH_KEEP_PROFILES")
    if kept:
        shutil.copy(raw_file, Path(kept) / raw_file.name)

    def top(counter: Counter[str], limit: int) -> list[dict[str, Any]]:
        return [{"frame": f, "share": c / total} for f, c in counter.most_common(limit)]

    return {"samples": total, "top_inclusive": top(inclusive, 80), "top_self": top(own, 25)}


def _short(frame: str) -> str:
    frame = _LINE_NUMBER.sub(")", frame.strip())
    for marker in ("/site-packages/", "/src/", "/lib/python3.11/"):
        if marker in frame:
            head, _, tail = frame.partition("(")
            return f"{head}({tail.split(marker, 1)[1]}"
    return frame
