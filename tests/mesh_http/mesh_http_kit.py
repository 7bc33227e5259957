"""Test kit for the engine's mesh HTTP policies: scripted upstreams and a live gateway.

``ScriptedUpstream`` is a small HTTP/1.1 server whose behaviour a test sets (answer, 503,
reset, hang, wait for a gate); it counts connections and requests and answers JSON
``{"name", "headers", "body_len"}``.  ``mesh_gateway`` runs a ``ProxyRuntime`` on a background
loop with a snapshot the test builds from the upstreams' ports; ``fetch`` is a tiny asyncio
client for concurrent requests, ``Client`` a blocking keep-alive one.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from meshgate import snapshot
from meshgate.proxy.filters.registry import PluginRegistry
from meshgate.proxy.filters.testing_http import LiveGateway
from meshgate.proxy.http.settings import ProxySettings


@dataclass
class ScriptedUpstream:
    name: str
    behaviour: str = "ok"  # ok | 503 | reset | hang | gate
    fail_first: int = 0  # answer 503 to this many requests first, then ``behaviour``
    connections: int = 0
    requests: int = 0
    closed_connections: int = 0
    bodies: list[int] = field(default_factory=list)
    gate: asyncio.Event | None = None
    server: asyncio.Server | None = None

    async def start(self) -> int:
        self.gate = asyncio.Event()
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                headers: dict[str, str] = {}
                for line in lines[1:]:
                    if ":" in line:
                        key, _, value = line.partition(":")
                        key = key.strip().lower()
                        seen = headers.get(key)
                        value = value.strip()
                        headers[key] = value if seen is None else f"{seen}, {value}"
                body = b""
                if "content-length" in headers:
                    body = await reader.readexactly(int(headers["content-length"]))
                self.requests += 1
                self.bodies.append(len(body))
                behaviour = "503" if self.requests <= self.fail_first else self.behaviour
                if behaviour == "reset":
                    writer.transport.abort()
                    return
                if behaviour == "hang":
                    await asyncio.sleep(30)
                if behaviour == "gate":
                    assert self.gate is not None
                    await self.gate.wait()
                if behaviour == "503":
                    writer.write(
                        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n"
                        b"x-up: " + self.name.encode() + b"\r\n\r\ndown"
                    )
                else:
                    payload = json.dumps(
                        {"name": self.name, "headers": headers, "body_len": len(body)}
                    ).encode()
                    writer.write(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        b"x-up: " + self.name.encode() + b"\r\nx-keep: yes\r\n"
                        b"Content-Length: %d\r\n\r\n" % len(payload) + payload
                    )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.closed_connections += 1
            writer.close()

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


@dataclass
class MeshGateway:
    live: LiveGateway
    ports: dict[str, int]  # listener name -> bound port
    upstreams: dict[str, ScriptedUpstream]

    def open_gate(self, name: str) -> None:
        gate = self.upstreams[name].gate
        assert gate is not None
        self.live.loop.call_soon_threadsafe(gate.set)

    def client(self, listener: str = "proxy") -> Client:
        return Client(self.ports[listener])

    def once(self, method: str, path: str, listener: str = "proxy") -> Reply:
        """One request on a connection closed right after."""
        client = self.client(listener)
        try:
            return client.request(method, path)
        finally:
            client.close()


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Client:
    """A blocking keep-alive client for one listener."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn: http.client.HTTPConnection | None = None

    def request(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> Reply:
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        self.conn.request(method, path, body=body, headers=headers or {})
        res = self.conn.getresponse()
        data = res.read()
        if res.will_close:
            self.close()
        return Reply(res.status, {k.lower(): v for k, v in res.getheaders()}, data)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


async def fetch(port: int, path: str, method: str = "GET") -> Reply:
    """One request on a new connection (for concurrent requests from ``asyncio.run``)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            f"{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n".encode()
        )
        data = await reader.read(-1)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    return Reply(int(lines[0].split()[1]), headers, body)


def service(
    sid: str, port: int = 9, *, cluster: str | None = None, **fields: Any
) -> snapshot.Service:
    return snapshot.Service(
        id=sid, name=sid, host="127.0.0.1", port=port, cluster=cluster or sid, **fields
    )


def cluster(name: str, ports: Sequence[int], **fields: Any) -> snapshot.Cluster:
    endpoints = tuple(snapshot.Endpoint(host="127.0.0.1", port=p) for p in ports)
    return snapshot.Cluster(name=name, endpoints=endpoints, **fields)


def listener(name: str) -> snapshot.Listener:
    return snapshot.Listener(name=name, address="127.0.0.1", port=0, reuse_port=False)


def route(rid: str, path: str = "/", service: str | None = None, **fields: Any) -> snapshot.Route:
    return snapshot.Route(
        id=rid, name=rid, paths=(path,), service=service, strip_path=False, **fields
    )


@contextlib.contextmanager
def mesh_gateway(
    upstreams: Sequence[ScriptedUpstream],
    build: Callable[[dict[str, int]], snapshot.Snapshot],
) -> Iterator[MeshGateway]:
    """Start ``upstreams`` and a gateway running ``build(upstream name -> port)``."""
    live = LiveGateway(PluginRegistry("bundled"), ProxySettings(timer_resolution=0.05))
    try:
        live.start()
        ports = {up.name: live.run(up.start()) for up in upstreams}
        snap = build(ports)
        assert live.runtime is not None
        live.run(live.runtime.apply(snap.with_version()))
        yield MeshGateway(live, live.runtime.bound_ports(), {up.name: up for up in upstreams})
    finally:
        for up in upstreams:
            live.loop.call_soon_threadsafe(up.close)
        live.stop()
