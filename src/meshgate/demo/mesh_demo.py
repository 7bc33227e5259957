"""``meshgate demo mesh``: a three-service mesh on this machine in one command.

In a work directory it starts (each a real process on 127.0.0.1, see ``mesh_demo_children``)
a control plane on SQLite, applies a Mesh ``default`` with builtin mTLS, starts three echo apps
(``meshgate demo app``: every answer names its service), issues dataplane tokens and starts
three sidecars — frontend → backend, db; backend → db — then waits until traffic flows through
every outbound, prints a short guide and runs until Ctrl-C or SIGTERM, when it stops every
child it started.  Ports are fixed offsets from ``--base-port`` (``DemoPorts``).
"""

from __future__ import annotations

import json
import shlex
import shutil
import socket
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meshgate.demo.mesh_demo_children import Child, Children, DemoStopped, StopSignals

DEFAULT_BASE_PORT = 7600
MESH = "default"
SERVICES = ("frontend", "backend", "db")
# who calls whom: (caller, callee) in the order of their outbound ports
OUTBOUNDS = (("frontend", "backend"), ("frontend", "db"), ("backend", "db"))
MESH_DOCUMENT = {
    "type": "Mesh",
    "name": MESH,
    "mtls": {"enabledBackend": "ca-1", "backends": [{"name": "ca-1", "type": "builtin"}]},
}
DENY_EXAMPLE = """\
type: MeshTrafficPermission
name: only-backend-to-db
mesh: default
spec:
  targetRef: {kind: MeshService, name: db}
  from:
    - targetRef: {kind: Mesh}
      default: {action: Deny}
    - targetRef: {kind: MeshService, name: backend}
      default: {action: Allow}
"""
START_TIMEOUT = 30.0
# files of a previous run in the same --dir (a fresh control plane and sidecars each time)
_STALE = ("mesh.db", "mesh.db-wal", "mesh.db-shm", "cp-ca.pem", "state", "tokens", "logs")


class DemoError(Exception):
    """A piece failed to start: the message names it and its log file."""


@dataclass(frozen=True, slots=True)
class DemoPorts:
    """Every port the demo listens on, as offsets from ``base``:
    +0 Mesh API, +1 DP server; +10..12 the apps, +20..22 the sidecars' mTLS inbounds
    (frontend, backend, db); +30 frontend→backend, +31 frontend→db, +32 backend→db."""

    base: int = DEFAULT_BASE_PORT

    SPAN = 33

    @property
    def api(self) -> int:
        return self.base

    @property
    def dp(self) -> int:
        return self.base + 1

    def app(self, service: str) -> int:
        return self.base + 10 + SERVICES.index(service)

    def inbound(self, service: str) -> int:
        return self.base + 20 + SERVICES.index(service)

    def outbound(self, caller: str, callee: str) -> int:
        return self.base + 30 + OUTBOUNDS.index((caller, callee))

    def every(self) -> list[tuple[int, str]]:
        """(port, what listens there) for every port of the demo."""
        found = [(self.api, "control plane Mesh API"), (self.dp, "control plane DP server")]
        found += [(self.app(s), f"{s} app") for s in SERVICES]
        found += [(self.inbound(s), f"{s}-1 sidecar inbound") for s in SERVICES]
        found += [(self.outbound(a, b), f"{a}-1 sidecar outbound to {b}") for a, b in OUTBOUNDS]
        return found


def check_base_port(base: int) -> None:
    if not 1024 <= base <= 65535 - DemoPorts.SPAN:
        raise DemoError(f"--base-port {base}: must be between 1024 and {65535 - DemoPorts.SPAN}")


def ports_in_use(ports: DemoPorts) -> list[tuple[int, str]]:
    """The demo's ports something on 127.0.0.1 already listens on (or holds)."""
    taken = []
    for port, what in ports.every():
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                taken.append((port, what))
    return taken


def cli_prefix() -> str:
    """How the user runs ``meshgate`` in the commands the guide prints."""
    script = sys.argv[0] if sys.argv else ""
    if Path(script).name != "meshgate":  # python -m meshgate.cli.main
        return shlex.join([sys.executable, "-m", "meshgate.cli.main"])
    on_path = shutil.which("meshgate")
    if on_path is not None and Path(on_path).resolve() == Path(script).resolve():
        return "meshgate"
    return shlex.quote(str(Path(script).absolute()))


def prepare_dir(work_dir: Path | None) -> Path:
    if work_dir is None:
        return Path(tempfile.mkdtemp(prefix="meshgate-mesh-demo-"))
    work_dir = work_dir.absolute()
    work_dir.mkdir(parents=True, exist_ok=True)
    for name in _STALE:
        stale = work_dir / name
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale)
        else:
            stale.unlink(missing_ok=True)
    return work_dir


class MeshDemo:
    """The start-up sequence; ``Children`` keeps what it started."""

    def __init__(self, work_dir: Path, ports: DemoPorts, children: Children) -> None:
        self.dir = work_dir
        self.ports = ports
        self.children = children
        self.api_url = f"http://127.0.0.1:{ports.api}"

    def start(self) -> None:
        cp = self.children.start("control plane", "cp", [
            "cp", "--store", f"sqlite:///{self.dir / 'mesh.db'}",
            "--api-listen", f"127.0.0.1:{self.ports.api}",
            "--dp-listen", f"127.0.0.1:{self.ports.dp}",
            "--dp-ca-out", str(self.dir / "cp-ca.pem"),
        ])  # fmt: skip
        apps = [self._start_app(service) for service in SERVICES]
        self._wait_listening(cp, self.ports.api, self.ports.dp)
        for service, app in zip(SERVICES, apps, strict=True):
            self._wait_listening(app, self.ports.app(service))
        self._call(cp, "PUT", f"/meshes/{MESH}", MESH_DOCUMENT)
        (self.dir / "deny.yaml").write_text(DENY_EXAMPLE)
        (self.dir / "tokens").mkdir(exist_ok=True)
        sidecars = {service: self._start_sidecar(cp, service) for service in SERVICES}
        for caller, callee in OUTBOUNDS:
            self._wait_flowing(sidecars, caller, callee)

    def _start_app(self, service: str) -> Child:
        port = str(self.ports.app(service))
        args = ["demo", "app", "--name", service, "--port", port]
        return self.children.start(f"{service} app", f"app-{service}", args)

    def _start_sidecar(self, cp: Child, service: str) -> Child:
        name = f"{service}-1"
        token = self._call(cp, "POST", "/tokens/dataplane", {"mesh": MESH, "name": name})
        token_file = self.dir / "tokens" / f"{name}.token"
        token_file.write_text(str(token))
        args = [
            "dp", "--cp", f"https://127.0.0.1:{self.ports.dp}", "--token", str(token_file),
            "--name", name, "--mesh", MESH, "--ca-cert", str(self.dir / "cp-ca.pem"),
            "--state-dir", str(self.dir / "state" / name), "--drain-timeout", "1",
            "--inbound", f"{service}:{self.ports.inbound(service)}:http:{self.ports.app(service)}",
        ]  # fmt: skip
        for caller, callee in OUTBOUNDS:
            if caller == service:
                args += ["--outbound", f"{callee}:{self.ports.outbound(caller, callee)}"]
        return self.children.start(f"{name} sidecar", name, args, stop_first=True)

    # ------------------------------------------------------------------ waiting

    def _check_alive(self) -> None:
        child = self.children.first_exited()
        if child is not None:
            raise DemoError(_failure(child, f"exited with code {child.exited()}"))

    def _until(self, child: Child, what: str, ready: Callable[[], bool]) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            self.children.signals.check()
            self._check_alive()
            if ready():
                return
            if time.monotonic() > deadline:
                raise DemoError(_failure(child, f"did not {what} within {START_TIMEOUT:.0f} s"))
            time.sleep(0.05)

    def _wait_listening(self, child: Child, *ports: int) -> None:
        listed = ", ".join(str(p) for p in ports)
        self._until(child, f"listen on 127.0.0.1:{listed}", lambda: all(map(_listens, ports)))

    def _wait_flowing(self, sidecars: dict[str, Child], caller: str, callee: str) -> None:
        port = self.ports.outbound(caller, callee)

        def flowing() -> bool:
            for service in (caller, callee):
                nack = self._last_nack(f"{service}-1")
                if nack:
                    raise DemoError(
                        _failure(sidecars[service], f"rejected its configuration: {nack}")
                    )
            return _answered_by(port, callee)

        self._until(sidecars[caller], f"reach {callee} through 127.0.0.1:{port}", flowing)

    def _last_nack(self, dataplane: str) -> str | None:
        try:
            overview = _json_call(
                self.api_url, "GET", f"/meshes/{MESH}/dataplanes/{dataplane}/_overview"
            )
        except (OSError, ValueError):
            return None  # not registered yet
        nack = overview.get("status", {}).get("lastNack") if isinstance(overview, dict) else None
        return f"{nack.get('error')}" if isinstance(nack, dict) else None

    def _call(self, cp: Child, method: str, path: str, body: Any) -> Any:
        try:
            return _json_call(self.api_url, method, path, body)
        except (OSError, ValueError) as exc:
            raise DemoError(_failure(cp, f"refused {method} {path}: {exc}")) from None


def _failure(child: Child, what: str) -> str:
    tail = child.log_tail()
    shown = "\n".join(f"  | {line}" for line in tail.splitlines())
    return f"the {child.piece} {what}; its log: {child.log_path}" + (f"\n{shown}" if shown else "")


def _listens(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _answered_by(port: int, service: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=3) as response:
            return bool(response.status == 200 and response.headers.get("x-upstream") == service)
    except (OSError, ValueError):
        return False


def _json_call(base: str, method: str, path: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            raw = response.read()
            kind = response.headers.get("content-type", "")
    except urllib.error.HTTPError as exc:
        raise ValueError(f"{exc.code} {exc.read().decode(errors='replace')[:300]}") from None
    return json.loads(raw) if kind.startswith("application/json") else raw.decode()


def guide(work_dir: Path, ports: DemoPorts, children: Children) -> str:
    mg = cli_prefix()
    api = f"http://127.0.0.1:{ports.api}"
    pids = {child.key: child.pid for child in children.started}
    code = "curl -s -o /dev/null -w '%{http_code}\\n'"
    lines = [
        f"meshgate mesh demo in {work_dir}  (logs/<piece>.log, PIDs in pids)",
        f"  {'control plane':<19} pid {pids['cp']:<7} Mesh API {api}, DP server "
        f"https://127.0.0.1:{ports.dp}",
    ]
    for service in SERVICES:
        outs = ", ".join(f"{b} {ports.outbound(a, b)}" for a, b in OUTBOUNDS if a == service)
        lines.append(
            f"  {service + ' app':<19} pid {pids['app-' + service]:<7} "
            f"http://127.0.0.1:{ports.app(service)}"
        )
        lines.append(
            f"  {service + '-1 sidecar':<19} pid {pids[service + '-1']:<7} inbound "
            f"{ports.inbound(service)} (mTLS)" + (f", outbound {outs}" if outs else "")
        )
    fb, fd, bd = (ports.outbound(a, b) for a, b in OUTBOUNDS)
    lines += [
        "",
        "Try, from another terminal:",
        f"  curl -s http://127.0.0.1:{fb}/hello        "
        '# frontend -> backend over mTLS: 200, "upstream": "backend"',
        f"  curl -s -m 3 http://127.0.0.1:{ports.inbound('db')}/   "
        "# fails: a sidecar's inbound speaks mTLS only",
        f"  {mg} mesh apply -f {shlex.quote(str(work_dir / 'deny.yaml'))} --cp-admin {api}",
        f"  {code} http://127.0.0.1:{bd}/   # 200: backend -> db is allowed",
        f"  {code} http://127.0.0.1:{fd}/   # 403: frontend -> db is denied",
        f"  {mg} mesh get dataplanes --cp-admin {api}",
        f"  {mg} mesh inspect dataplane db-1 --rules --cp-admin {api}",
        f"  curl -s {api}/meshes/default/dataplanes   # the Mesh API",
        "",
        "ready: traffic flows through every sidecar; Ctrl-C stops the demo and all it started",
    ]
    return "\n".join(lines)


def run_mesh_demo(
    work_dir: Path | None, base_port: int, echo: Callable[[str], None], error: Callable[[str], None]
) -> int:
    """The whole demo; returns the exit code (0 after Ctrl-C/SIGTERM, 1 on failure)."""
    try:
        check_base_port(base_port)
    except DemoError as exc:
        error(f"meshgate demo mesh: {exc}")
        return 2
    ports = DemoPorts(base_port)
    taken = ports_in_use(ports)
    if taken:
        listed = "; ".join(f"127.0.0.1:{port} ({what})" for port, what in taken)
        error(
            f"meshgate demo mesh: port already in use: {listed}. Nothing was started; stop what "
            f"holds it or choose other ports with --base-port (the demo uses {ports.base}.."
            f"{ports.base + DemoPorts.SPAN - 1})."
        )
        return 1
    signals = StopSignals()
    signals.install()
    children: Children | None = None
    code = 0
    try:
        directory = prepare_dir(work_dir)
        children = Children(directory, signals)
        echo(f"meshgate demo mesh: starting in {directory} ...")
        MeshDemo(directory, ports, children).start()
        echo(guide(directory, ports, children))
        _serve(children, signals, echo)
    except DemoStopped:
        echo("meshgate demo mesh: stopping")
    except (DemoError, OSError) as exc:
        error(f"meshgate demo mesh: {exc}")
        code = 1
    finally:
        for child in children.stop_all() if children is not None else []:
            error(
                f"meshgate demo mesh: the {child.piece} did not stop on SIGTERM and was killed; "
                f"its log: {child.log_path}"
            )
        signals.uninstall()
    if children is not None:
        echo(f"meshgate demo mesh: stopped (logs kept in {children.logs_dir})")
    return code


def _serve(children: Children, signals: StopSignals, echo: Callable[[str], None]) -> None:
    """Run until a signal, telling the user when a child exits on its own."""
    while True:
        signals.check()
        for child in children.started:
            if child.exited() is not None and not child.reported_exit:
                child.reported_exit = True
                echo(
                    f"meshgate demo mesh: the {child.piece} exited with code {child.exited()}; "
                    f"its log: {child.log_path}"
                )
        time.sleep(0.1)
