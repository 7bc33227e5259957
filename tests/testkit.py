"""Helpers shared by every test area: free ports, background loops, a ``meshgate run`` process."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvloop

from meshgate import snapshot


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class EchoUpstreams:
    """Echo upstreams running in a background event loop (see meshgate.demo.upstreams)."""

    ports: list[int] = field(default_factory=list)
    counters: list[dict[str, int]] = field(default_factory=list)


class BackgroundLoop:
    """An event loop in a thread, for servers a test talks to with blocking clients."""

    def __init__(self) -> None:
        self.loop = uvloop.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Any, timeout: float = 10) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()


MESHGATE = [sys.executable, "-m", "meshgate.cli.main"]


def wait_for_port(
    port: int, timeout: float = 15.0, proc: subprocess.Popen[str] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


class Gateway:
    """A ``meshgate run`` process on a port of its own."""

    def __init__(self, config: Path | None, port: int, *extra: str, workers: int = 1) -> None:
        self.config = config
        self.port = port
        self.admin_port = free_port()
        # a file, not a pipe: a full pipe would block the gateway
        self._log = tempfile.TemporaryFile("w+")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                *MESHGATE,
                "run",
                *(["-c", str(config)] if config is not None else []),
                "--proxy-listen",
                f"127.0.0.1:{port}",
                "--workers",
                str(workers),
                "--access-log",
                "off",
                "--admin-listen",
                f"127.0.0.1:{self.admin_port}",
                *extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=self._log,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            wait_for_port(port, proc=self.proc)
            wait_for_port(self.admin_port, proc=self.proc)
        except (TimeoutError, RuntimeError) as exc:
            raise RuntimeError(f"{exc}; meshgate said:\n{self.stop()}") from None

    def request(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def echo(self, path: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
        status, _, body = self.request("GET", path, headers)
        assert status == 200, (status, body)
        result: dict[str, Any] = json.loads(body)
        return result

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def stop(self) -> str:
        terminate(self.proc)
        return self.log()

    def log(self) -> str:
        """What the gateway wrote to stderr so far."""
        self._log.seek(0)
        text = self._log.read()
        if self.proc.poll() is not None:
            self._log.close()
        return text


def terminate(proc: subprocess.Popen[Any], grace: float = 20) -> None:
    """SIGTERM ``proc`` if it still runs, SIGKILL it after ``grace`` seconds; reap it."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class RecordingProxy:
    """A proxy that keeps what it was given."""

    def __init__(self) -> None:
        self.applied: list[snapshot.Snapshot] = []

    async def start(self, snap: snapshot.Snapshot) -> None:
        self.applied.append(snap)

    async def apply(self, snap: snapshot.Snapshot) -> None:
        self.applied.append(snap)

    async def stop(self) -> None:
        return None

    def ports(self) -> dict[str, int]:
        return {}


# --------------------------------------------------------------------------- shared helpers


def eventually(check: Callable[[], Any], timeout: float = 20, interval: float = 0.05) -> Any:
    """``check()``'s first truthy result within ``timeout`` s (its errors count as not yet)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except (OSError, AssertionError, KeyError, ValueError, http.client.HTTPException) as exc:
            last = exc
        time.sleep(interval)
    raise AssertionError(f"not reached in {timeout}s: {last!r}")


def json_api(port: int, path: str, method: str = "GET", body: Any = None) -> Any:
    """A JSON API call on 127.0.0.1: the parsed answer, or its text when it is not JSON."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as response:
        raw = response.read()
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode()


PG_DSN_ENV = "MESHGATE_TEST_PG_DSN"


def pg_dsn() -> str:
    """The test PostgreSQL's DSN; the test is skipped outside ``make test``, which starts
    PostgreSQL and sets it."""
    dsn = os.environ.get(PG_DSN_ENV)
    if not dsn:
        import pytest

        pytest.skip(f'{PG_DSN_ENV} is not set; start it: eval "$(bash scripts/services/env.sh)"')
    return dsn


@contextmanager
def fresh_pg_schema(dsn: str, prefix: str = "mg_test") -> Iterator[str]:
    """A new empty PostgreSQL schema for one test, dropped afterwards; yields a store URL
    using it."""
    import psycopg  # a dev dependency: only the PostgreSQL tests need it

    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in dsn else "?"
    try:
        yield f"{dsn}{separator}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
