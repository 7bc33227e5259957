"""Helpers of the control-plane replica tests: store URLs (a fresh PostgreSQL schema per
test, or a SQLite file), ``meshgate cp`` replica processes and ``meshgate dp`` sidecars."""

from __future__ import annotations

import http.client
import http.server
import json
import os
import signal
import subprocess
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from testkit import MESHGATE, free_port, fresh_pg_schema, json_api, pg_dsn, wait_for_port


@contextmanager
def store_url_for(kind: str, tmp_path: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path}/cp.db"
        return
    with fresh_pg_schema(pg_dsn(), "mg_cp_ha") as url:
        yield url


class Proc:
    def __init__(self, args: list[str]) -> None:
        self.log = tempfile.TemporaryFile("w+")  # noqa: SIM115
        self.proc = subprocess.Popen(
            args, stdout=self.log, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.log.closed:
            return ""
        self.log.seek(0)
        text = self.log.read()
        self.log.close()
        return text


HEARTBEAT = 0.2
DEAD_AFTER = 1.0
GRACE = 0.5


@dataclass
class Replica:
    """One ``meshgate cp`` process."""

    name: str
    store: str
    tmp: Path
    api_port: int = field(default_factory=free_port)
    dp_port: int = field(default_factory=free_port)
    proc: Proc | None = None
    extra: tuple[str, ...] = ()  # more ``meshgate cp`` options

    def launch(self) -> None:
        self.proc = Proc([
            *MESHGATE, "cp", "--store", self.store, "--instance-id", self.name,
            "--api-listen", f"127.0.0.1:{self.api_port}",
            "--dp-listen", f"127.0.0.1:{self.dp_port}",
            "--dp-ca-out", str(self.tmp / f"{self.name}-ca.pem"),
            "--heartbeat-interval", f"{HEARTBEAT}s", "--instance-dead-after", f"{DEAD_AFTER}s",
            "--dataplane-reconnect-grace", f"{GRACE}s", *self.extra,
        ])  # fmt: skip

    def wait_ready(self) -> None:
        assert self.proc is not None
        wait_for_port(self.api_port, timeout=30, proc=self.proc.proc)
        wait_for_port(self.dp_port, timeout=30, proc=self.proc.proc)

    @property
    def dp_url(self) -> str:
        return f"https://127.0.0.1:{self.dp_port}"

    def api(self, path: str, method: str = "GET", body: Any = None) -> Any:
        return json_api(self.api_port, path, method, body)

    def status(self, name: str, mesh: str = "default") -> dict[str, Any] | None:
        try:
            found = self.api(f"/meshes/{mesh}/dataplanes/{name}/_overview")
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise
        return dict(found["status"])


@dataclass
class Cluster:
    """Replicas on one store, and the sidecars started against them."""

    tmp: Path
    store: str
    replicas: dict[str, Replica] = field(default_factory=dict)
    sidecars: list[Proc] = field(default_factory=list)

    def start(self, *names: str, extra: tuple[str, ...] = ()) -> None:
        """Start the replicas at the same moment, then wait for all of them."""
        fresh = [Replica(name, self.store, self.tmp, extra=extra) for name in names]
        for replica in fresh:
            replica.launch()
            self.replicas[replica.name] = replica
        for replica in fresh:
            replica.wait_ready()

    def sidecar(
        self,
        name: str,
        cps: list[Replica],
        inbound: tuple[str, int],
        outbounds: dict[str, int],
        *,
        app_port: int | None = None,
        urls: list[str] | None = None,
    ) -> Path:
        """``meshgate dp`` for ``name`` given ``cps``' addresses (or ``urls``), its inbound
        in front of ``app_port``; returns its state dir."""
        service, port = inbound
        doc = {
            "type": "Dataplane", "name": name, "mesh": "default",
            "networking": {
                "address": "127.0.0.1",
                "inbound": [{"port": port, "servicePort": app_port or free_port(),
                             "tags": {"kuma.io/service": service, "kuma.io/protocol": "http"}}],
                "outbound": [{"port": p, "tags": {"kuma.io/service": s}}
                             for s, p in outbounds.items()],
            },
        }  # fmt: skip
        (self.tmp / f"{name}.yaml").write_text(yaml.safe_dump(doc))
        token = cps[0].api("/tokens/dataplane", "POST", {"mesh": "default", "name": name})
        (self.tmp / f"{name}.token").write_text(token)
        state = self.tmp / f"state-{name}"
        args = [
            *MESHGATE, "dp", "--role", "sidecar", "--token", str(self.tmp / f"{name}.token"),
            "--dataplane", str(self.tmp / f"{name}.yaml"), "--state-dir", str(state),
            "--ca-cert", str(self.tmp / f"{cps[0].name}-ca.pem"),
        ]  # fmt: skip
        for url in urls or [cp.dp_url for cp in cps]:
            args += ["--cp", url]
        self.sidecars.append(Proc(args))
        return state

    def close(self) -> str:
        logs = [proc.stop() for proc in reversed(self.sidecars)]
        logs += [r.proc.stop() for r in self.replicas.values() if r.proc is not None]
        return "\n".join(logs)


@contextmanager
def cluster(tmp_path: Path, store: str) -> Iterator[Cluster]:
    made = Cluster(tmp_path, store)
    try:
        yield made
    except BaseException:
        print(made.close())  # shown by pytest on failure
        raise
    made.close()


def snapshot_of(state_dir: Path) -> dict[str, Any]:
    return dict(json.loads((state_dir / "snapshot.json").read_text()))


@contextmanager
def app_server() -> Iterator[int]:
    """An HTTP app on 127.0.0.1 answering every GET with 200 ``ok``; yields its port."""

    class Answer(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def get_status(port: int) -> int:
    """The status of ``GET /`` on 127.0.0.1:``port`` over a new connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/")
        return connection.getresponse().status
    finally:
        connection.close()
