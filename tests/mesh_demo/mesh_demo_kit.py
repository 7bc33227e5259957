"""Helpers of the ``meshgate demo mesh`` tests: run the demo as a real process, read what it
prints, find the processes it started (its ``pids`` file, and independently every process whose
working directory is the demo's), and ask plain HTTP / TLS questions of its ports."""

from __future__ import annotations

import json
import os
import queue
import random
import shlex
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, Any

from cryptography import x509

from testkit import MESHGATE, terminate

SPAN = 33  # ports the demo uses from --base-port on


def free_base_port() -> int:
    """A base port whose SPAN ports nothing listens on (below Linux's ephemeral range)."""
    for _ in range(200):
        base = random.randrange(20000, 32000)
        if all(_bindable(base + offset) for offset in range(SPAN)):
            return base
    raise RuntimeError("no free range of ports")


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class DemoRun:
    """``meshgate demo mesh --dir DIR --base-port BASE`` as a subprocess."""

    def __init__(self, work_dir: Path, base: int | None = None) -> None:
        self.dir = work_dir
        self.base = base if base is not None else free_base_port()
        self.proc = subprocess.Popen(
            [*MESHGATE, "demo", "mesh", "--dir", str(work_dir), "--base-port", str(self.base)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        self.out: list[str] = []
        self.err: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        assert self.proc.stdout is not None
        assert self.proc.stderr is not None
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.out, True)),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.err, False)),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: IO[str], into: list[str], announce: bool) -> None:
        for line in stream:
            into.append(line)
            if announce:
                self._lines.put(line)
        if announce:
            self._lines.put(None)

    def wait_for(self, marker: str, timeout: float = 40) -> str:
        """The first stdout line (not yet consumed) containing ``marker``."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {marker!r} within {timeout} s:\n{self.text()}") from None
            if line is None:
                raise AssertionError(f"the demo ended before {marker!r}:\n{self.text()}")
            if marker in line:
                return line

    def text(self) -> str:
        """What the demo printed, and the end of each of its children's logs."""
        parts = ["".join(self.out), "--- stderr ---\n", "".join(self.err)]
        for log in sorted((self.dir / "logs").glob("*.log")):
            tail = log.read_text(errors="replace").splitlines()[-20:]
            parts.append(f"--- {log.name} ---\n" + "\n".join(tail) + "\n")
        return "".join(parts)

    def guide_command(self, marker: str) -> list[str]:
        """The printed guide's command on the line containing ``marker`` (comment removed)."""
        line = next(line for line in self.out if marker in line)
        return shlex.split(line, comments=True)

    def pids(self) -> dict[str, int]:
        text = (self.dir / "pids").read_text()
        return {key: int(pid) for key, pid in (line.split() for line in text.splitlines())}

    def finish(self, timeout: float = 25) -> int:
        code = self.proc.wait(timeout)
        self._join()
        return code

    def _join(self) -> None:
        for reader in self._readers:
            reader.join(5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()

    def close(self) -> None:
        """Stop the demo if a test left it running, and anything it left (never fails)."""
        terminate(self.proc)
        for pid in processes_in(self.dir):
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
        self._join()


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie or a reused PID of something else does not count)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state != "Z" and b"meshgate" in cmdline


def processes_in(work_dir: Path) -> list[int]:
    """Every live process whose working directory is ``work_dir`` (the demo's children)."""
    found = []
    target = str(work_dir.resolve())
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if cwd == target and alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def still_running(pids: list[int]) -> list[int]:
    """Those of ``pids`` alive right now."""
    return [pid for pid in pids if alive(pid)]


def get(port: int, path: str = "/") -> tuple[int, dict[str, str], Any]:
    """``GET`` over plain HTTP: (status, headers, JSON body or text); 4xx/5xx are answers too."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            status, headers, raw = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        status, headers, raw = exc.code, dict(exc.headers), exc.read()
    try:
        return status, {k.lower(): v for k, v in headers.items()}, json.loads(raw)
    except ValueError:
        return status, {k.lower(): v for k, v in headers.items()}, raw.decode(errors="replace")


def status_of(port: int) -> int:
    return get(port)[0]


def plain_http_answer(port: int) -> bytes:
    """What a plain-HTTP request to ``port`` gets back (b"" when the connection just closes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
    return answer


def tls_without_client_cert(port: int) -> tuple[x509.Certificate, bytes]:
    """The certificate a TLS server on ``port`` presents, and what a request without a client
    certificate gets back (b"" when the server closes the connection)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        answer = b""
        try:
            tls.sendall(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            while chunk := tls.recv(65536):
                answer += chunk
        except (OSError, ssl.SSLError):
            pass
    return x509.load_der_x509_certificate(der), answer


def uri_sans(cert: x509.Certificate) -> list[str]:
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return list(names.get_values_for_type(x509.UniformResourceIdentifier))
