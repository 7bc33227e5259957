"""Helpers of the multi-process mesh tests: a ``meshgate cp`` process, apps and sidecars
(``meshgate dp`` processes started from Dataplane files), the ``meshgate mesh`` CLI, and
clients that speak to a sidecar's inbound with a workload's own mTLS certificate."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509

from meshgate import snapshot
from testkit import MESHGATE, free_port, json_api, wait_for_port
from testkit import eventually as testkit_eventually

APPS = str(Path(__file__).with_name("mesh_cp_apps.py"))


class Proc:
    def __init__(self, args: list[str]) -> None:
        self.log = tempfile.TemporaryFile("w+")  # noqa: SIM115
        self.proc = subprocess.Popen(
            args, stdout=self.log, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.log.closed:
            return ""
        self.log.seek(0)
        text = self.log.read()
        self.log.close()
        return text


@dataclass
class Inbound:
    service: str
    port: int
    app_port: int
    protocol: str = "http"
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class Mesh:
    tmp: Path
    api_port: int = field(default_factory=free_port)
    dp_port: int = field(default_factory=free_port)
    procs: list[Proc] = field(default_factory=list)
    cp: Proc | None = None

    def start_cp(self) -> None:
        self.cp = Proc([
            *MESHGATE, "cp", "--store", f"sqlite:///{self.tmp}/cp.db",
            "--api-listen", f"127.0.0.1:{self.api_port}", "--dp-listen", f"127.0.0.1:{self.dp_port}",
            "--dp-ca-out", str(self.tmp / "cp-ca.pem"),
        ])  # fmt: skip
        wait_for_port(self.api_port, proc=self.cp.proc)
        wait_for_port(self.dp_port, proc=self.cp.proc)

    def run_cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*MESHGATE, "mesh", *args, "--cp-admin", f"http://127.0.0.1:{self.api_port}"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip

    def cli(self, *args: str) -> str:
        done = self.run_cli(*args)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def apply(self, text: str, name: str = "policy.yaml") -> str:
        path = self.tmp / name
        path.write_text(text)
        return self.cli("apply", "-f", str(path))

    def api(self, path: str, method: str = "GET", body: Any = None) -> Any:
        return json_api(self.api_port, path, method, body)

    def apps(self, *specs: str) -> None:
        """Start the apps process (see ``mesh_cp_apps``) and wait for its ports."""
        proc = Proc([sys.executable, APPS, *specs])
        self.procs.append(proc)
        for spec in specs:
            wait_for_port(int(spec.rsplit(":", 1)[1]), proc=proc.proc)

    def sidecar(
        self, name: str, mesh: str, inbounds: list[Inbound], outbounds: dict[str, int]
    ) -> Path:
        """Start ``meshgate dp`` for the Dataplane ``name``; returns its state directory."""
        doc = {
            "type": "Dataplane", "name": name, "mesh": mesh,
            "networking": {
                "address": "127.0.0.1",
                "inbound": [
                    {"port": i.port, "servicePort": i.app_port,
                     "tags": {"kuma.io/service": i.service, "kuma.io/protocol": i.protocol,
                              **i.tags}}
                    for i in inbounds
                ],
                "outbound": [
                    {"port": port, "tags": {"kuma.io/service": svc}}
                    for svc, port in outbounds.items()
                ],
            },
        }  # fmt: skip
        (self.tmp / f"{name}.yaml").write_text(yaml.safe_dump(doc))
        token = self.api("/tokens/dataplane", "POST", {"mesh": mesh, "name": name})
        (self.tmp / f"{name}.token").write_text(token)
        state = self.tmp / f"state-{name}"
        self.procs.append(Proc([
            *MESHGATE, "dp", "--role", "sidecar", "--cp", f"https://127.0.0.1:{self.dp_port}",
            "--token", str(self.tmp / f"{name}.token"), "--dataplane", str(self.tmp / f"{name}.yaml"),
            "--state-dir", str(state), "--ca-cert", str(self.tmp / "cp-ca.pem"),
        ]))  # fmt: skip
        return state

    def status(self, mesh: str, name: str) -> dict[str, Any]:
        return dict(self.api(f"/meshes/{mesh}/dataplanes/{name}/_overview")["status"])

    def acked(self, mesh: str, name: str) -> str | None:
        """The version the sidecar ACKed, when it is the last one pushed (else None)."""
        status = self.status(mesh, name)
        version = status["lastAckedVersion"]
        return version if version and version == status["lastPushedVersion"] else None

    def wait_new_version(self, mesh: str, name: str, before: str | None) -> str:
        """Wait until the sidecar ACKed a version other than ``before``."""
        return str(eventually(lambda: (v := self.acked(mesh, name)) and v != before and v))

    def close(self) -> str:
        logs = [p.stop() for p in reversed(self.procs)]
        if self.cp is not None:
            logs.append(self.cp.stop())
        return "\n".join(logs)


def eventually(check: Callable[[], Any], timeout: float = 20) -> Any:
    return testkit_eventually(check, timeout, interval=0.1)


def request(
    port: int, path: str = "/", headers: dict[str, str] | None = None, timeout: float = 10
) -> tuple[int, Any]:
    """``GET path`` on a fresh connection: (status, JSON body or text)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        raw = response.read()
    finally:
        conn.close()
    try:
        return response.status, json.loads(raw)
    except ValueError:
        return response.status, raw.decode(errors="replace")


# ---------------------------------------------------------------- a workload's own mTLS


@dataclass(frozen=True)
class Workload:
    """A sidecar's mTLS material read from its state directory (key, cached snapshot)."""

    cert: str
    key: str
    roots: tuple[str, ...]

    @classmethod
    def of(cls, state_dir: Path) -> Workload:
        snap = snapshot.Snapshot.from_json((state_dir / "snapshot.json").read_bytes())
        cert = next(c.cert for c in snap.certificates if c.id == "mesh-workload")
        roots = tuple(ca.cert for ca in snap.ca_certificates)
        return cls(cert, (state_dir / "key.pem").read_text(), roots)

    def context(self, present: bool = True) -> ssl.SSLContext:
        """Verifies the server against the mesh roots; presents the workload cert if asked."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.load_verify_locations(cadata="\n".join(self.roots))
        if present:
            directory = Path(tempfile.mkdtemp())
            (directory / "cert.pem").write_text(self.cert)
            (directory / "key.pem").write_text(self.key)
            context.load_cert_chain(directory / "cert.pem", directory / "key.pem")
        return context


def uri_sans(der: bytes) -> list[str]:
    cert = x509.load_der_x509_certificate(der)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return list(names.get_values_for_type(x509.UniformResourceIdentifier))


def mtls_get(port: int, context: ssl.SSLContext, path: str = "/") -> tuple[bytes, int | str]:
    """``GET`` over TLS straight to an inbound: (server cert DER, status or error name)."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        tls.sendall(f"GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n".encode())
        try:
            answer = b""
            while chunk := tls.recv(65536):
                answer += chunk
        except (OSError, ssl.SSLError) as exc:
            return der, type(exc).__name__
    if not answer.startswith(b"HTTP/1.1 "):
        return der, f"no answer: {answer[:40]!r}"
    return der, int(answer.split(b" ", 2)[1])


def served_serial(port: int) -> int:
    """The serial of the certificate an mTLS inbound serves (no client cert needed to see it)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return int(x509.load_der_x509_certificate(der).serial_number)
