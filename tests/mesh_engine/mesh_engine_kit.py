"""Test kit for the engine's mesh side: a mesh PKI, hand-built sidecar snapshots, upstreams
that report the client identity they see, and small async clients.

Everything runs in one uvloop loop per test (``run``): the ``ProxyRuntime``, the upstreams
and the clients, all on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import functools
import json
import ssl
import tempfile
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import uvloop

from meshgate import snapshot
from meshgate.controlplane.ca import RootCA, generate_root, issue_workload
from meshgate.demo.upstreams import start_echo_upstream
from meshgate.proxy.http.settings import ProxySettings
from meshgate.proxy.runtime import ProxyRuntime
from meshgate.proxy.tls.identity import uri_sans

MESH = "default"
WEB = f"spiffe://{MESH}/web"  # the sidecar under test
FRONTEND = f"spiffe://{MESH}/frontend"  # a well-behaved client
INTRUDER = f"spiffe://{MESH}/intruder"  # a client permissions keep out
BACKEND = f"spiffe://{MESH}/backend"  # the upstream the sidecar calls
CA_ID = f"mesh-ca:{MESH}"
CERT_ID = "mesh-workload"


@dataclass(frozen=True)
class Pair:
    cert: str
    key: str


@dataclass(frozen=True)
class PKI:
    root: RootCA
    other_root: RootCA  # a CA the mesh does not trust
    web: Pair
    frontend: Pair
    intruder: Pair
    backend: Pair
    stranger: Pair  # "frontend", issued by ``other_root``


@functools.cache
def pki() -> PKI:
    now = datetime.datetime.now(datetime.UTC)
    root = generate_root(MESH, now=now)
    other = generate_root("elsewhere", now=now)

    def issue(ca: RootCA, uri: str) -> Pair:
        cert = issue_workload(ca, [uri], now=now)
        return Pair(cert.cert, cert.key)

    return PKI(
        root=root,
        other_root=other,
        web=issue(root, WEB),
        frontend=issue(root, FRONTEND),
        intruder=issue(root, INTRUDER),
        backend=issue(root, BACKEND),
        stranger=issue(other, FRONTEND),
    )


def _load_pair(context: ssl.SSLContext, pair: Pair) -> None:
    with tempfile.TemporaryDirectory() as directory:
        cert = Path(directory, "c.pem")
        key = Path(directory, "k.pem")
        cert.write_text(pair.cert)
        key.write_text(pair.key)
        context.load_cert_chain(cert, key)


def client_context(pair: Pair | None) -> ssl.SSLContext:
    """A client context trusting the mesh root (no host name check), presenting ``pair``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.load_verify_locations(cadata=pki().root.cert)
    if pair is not None:
        _load_pair(context, pair)
    return context


def server_context(pair: Pair) -> ssl.SSLContext:
    """An upstream's server context: serves ``pair``, requires a client cert of the mesh."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _load_pair(context, pair)
    context.load_verify_locations(cadata=pki().root.cert)
    context.verify_mode = ssl.CERT_REQUIRED
    return context


# --------------------------------------------------------------------------- snapshots


def tls_material() -> tuple[tuple[snapshot.Certificate, ...], tuple[snapshot.CACertificate, ...]]:
    p = pki()
    return (
        (snapshot.Certificate(id=CERT_ID, cert=p.web.cert, key=p.web.key),),
        (snapshot.CACertificate(id=CA_ID, cert=p.root.cert),),
    )


def inbound(
    name: str,
    protocol: str,
    app_port: int,
    *,
    mode: Literal["strict", "permissive"] | None = "strict",
    permissions: tuple[snapshot.PermissionRule, ...] | None = None,
    idle_timeout_ms: int | None = None,
    limits: snapshot.ConnectionLimits | None = None,
) -> tuple[snapshot.Listener, snapshot.Route, snapshot.Service, snapshot.Cluster]:
    """A sidecar inbound as ``compile_dataplane`` makes it: listener, catch-all route, service."""
    mtls = (
        snapshot.ListenerMTLS(certificate=CERT_ID, client_cas=(CA_ID,), mode=mode)
        if mode is not None
        else None
    )
    http = protocol == "http"
    listener = snapshot.Listener(
        name=name,
        port=0,
        protocol="http" if http else "tcp",
        mtls=mtls,
        permissions=permissions,
    )
    route = snapshot.Route(
        id=name,
        protocols=("http", "https") if http else ("tcp",),
        paths=("/",) if http else (),
        strip_path=False,
        preserve_host=True,
        service=name,
        listeners=(name,),
    )
    service = snapshot.Service(
        id=name,
        protocol="http" if http else "tcp",
        host="127.0.0.1",
        port=app_port,
        retries=0,
        cluster=name,
        idle_timeout_ms=idle_timeout_ms,
    )
    cluster = snapshot.Cluster(
        name=name, endpoints=(snapshot.Endpoint(host="127.0.0.1", port=app_port),), limits=limits
    )
    return listener, route, service, cluster


def outbound(
    name: str,
    protocol: str,
    upstream_port: int,
    *,
    peer_ids: tuple[str, ...] = (BACKEND,),
    mtls: bool = True,
) -> tuple[snapshot.Listener, snapshot.Route, snapshot.Service, snapshot.Cluster]:
    """A sidecar outbound as ``MeshContext.destination`` makes it: mTLS towards the upstream."""
    http = protocol == "http"
    listener = snapshot.Listener(name=name, port=0, protocol="http" if http else "tcp")
    route = snapshot.Route(
        id=name,
        protocols=("http", "https") if http else ("tcp",),
        paths=("/",) if http else (),
        strip_path=False,
        service=name,
        listeners=(name,),
    )
    service = snapshot.Service(
        id=name,
        protocol=("https" if mtls else "http") if http else ("tls" if mtls else "tcp"),
        host="backend",
        port=upstream_port,
        retries=0,
        cluster=name,
        tls_verify=True if mtls else None,
        ca_certificates=(CA_ID,) if mtls else (),
        client_certificate=CERT_ID if mtls else None,
        tls_peer_ids=peer_ids if mtls else (),
    )
    cluster = snapshot.Cluster(
        name=name, endpoints=(snapshot.Endpoint(host="127.0.0.1", port=upstream_port),)
    )
    return listener, route, service, cluster


def build(
    *parts: tuple[snapshot.Listener, snapshot.Route, snapshot.Service, snapshot.Cluster],
) -> snapshot.Snapshot:
    certificates, cas = tls_material()
    return snapshot.Snapshot(
        listeners=tuple(p[0] for p in parts),
        routes=tuple(p[1] for p in parts),
        services=tuple(p[2] for p in parts),
        clusters=tuple(p[3] for p in parts),
        certificates=certificates,
        ca_certificates=cas,
    ).with_version()


_open: list[asyncio.BaseTransport | asyncio.Server] = []  # made by the running test


def run(coro: Coroutine[Any, Any, Any], timeout: float = 30) -> Any:
    """Run a test coroutine on uvloop; whatever it opened is closed even when it fails
    (uvloop's loop.close() hangs on transports left open)."""

    async def guarded() -> Any:
        try:
            async with asyncio.timeout(timeout):
                return await coro
        finally:
            for item in reversed(_open):
                abort = getattr(item, "abort", None)  # uvloop's classes are no asyncio ones
                if abort is not None:
                    abort()
                else:
                    item.close()
            _open.clear()
            await asyncio.sleep(0.01)

    return uvloop.run(guarded())


@contextlib.asynccontextmanager
async def proxy(snap: snapshot.Snapshot, **settings: Any) -> AsyncIterator[Proxy]:
    """A running ``ProxyRuntime`` on ``snap``; its listeners' ports in ``.ports``."""
    settings.setdefault("timer_resolution", 0.05)
    runtime = ProxyRuntime(ProxySettings(**settings))
    try:
        await runtime.apply(snap)
        yield Proxy(runtime, runtime.bound_ports())
    finally:
        await runtime.shutdown(0.5)


@dataclass
class Proxy:
    runtime: ProxyRuntime
    ports: dict[str, int]


# --------------------------------------------------------------------------- upstreams


@dataclass
class Upstream:
    server: asyncio.Server
    port: int
    connections: int = 0
    peers: list[tuple[str, ...]] | None = None


class _WhoAmI(asyncio.Protocol):
    """Answers every HTTP request with JSON ``{"peer": [URI SANs of the client cert]}``."""

    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.upstream.connections += 1
        _open.append(transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            _, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            assert self.transport is not None
            peer = uri_sans(self.transport.get_extra_info("peercert"))
            body = json.dumps({"peer": list(peer)}).encode()
            self.transport.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\n\r\n%s" % (len(body), body)
            )


async def start_whoami(pair: Pair) -> Upstream:
    """An HTTPS upstream (mTLS: serves ``pair``, requires a mesh client certificate)."""
    loop = asyncio.get_running_loop()
    upstream = Upstream(server=None, port=0)  # type: ignore[arg-type]
    upstream.server = await loop.create_server(
        lambda: _WhoAmI(upstream), "127.0.0.1", 0, ssl=server_context(pair)
    )
    upstream.port = upstream.server.sockets[0].getsockname()[1]
    _open.append(upstream.server)
    return upstream


class _Echo(asyncio.Protocol):
    """Echoes bytes; on EOF finishes writing and closes.  Over TLS it first sends a line
    with the client's URI SANs."""

    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.upstream.connections += 1
        _open.append(transport)
        if transport.get_extra_info("sslcontext") is not None:
            peer = uri_sans(transport.get_extra_info("peercert"))
            transport.write(b"PEER " + ",".join(peer).encode() + b"\n")  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def eof_received(self) -> bool | None:
        return None  # close after flushing


async def start_echo(pair: Pair | None = None) -> Upstream:
    """A TCP echo server (TLS with a required mesh client certificate when ``pair``)."""
    loop = asyncio.get_running_loop()
    upstream = Upstream(server=None, port=0)  # type: ignore[arg-type]
    upstream.server = await loop.create_server(
        lambda: _Echo(upstream),
        "127.0.0.1",
        0,
        ssl=server_context(pair) if pair is not None else None,
    )
    upstream.port = upstream.server.sockets[0].getsockname()[1]
    _open.append(upstream.server)
    return upstream


async def start_app() -> tuple[asyncio.Server, int, dict[str, int]]:
    """The demo HTTP echo app (JSON of the request it got): server, port, counters."""
    server, counters = await start_echo_upstream("app")
    _open.append(server)
    return server, server.sockets[0].getsockname()[1], counters


# --------------------------------------------------------------------------- clients


@dataclass
class HttpResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


async def read_response(reader: asyncio.StreamReader) -> HttpResponse:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return HttpResponse(status, headers, body)


async def get(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str = "/"
) -> HttpResponse:
    writer.write(f"GET {path} HTTP/1.1\r\nHost: web\r\n\r\n".encode())
    return await read_response(reader)


async def connect(
    port: int, pair: Pair | None = None, *, tls: bool = True
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A client connection, TLS (presenting ``pair`` when given) unless ``tls`` is False."""
    context = client_context(pair) if tls else None
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    _open.append(writer.transport)
    return reader, writer


async def closed_without_data(reader: asyncio.StreamReader) -> bool:
    """True when the peer closes (EOF or reset) without sending anything."""
    try:
        data = await asyncio.wait_for(reader.read(1), 10)
    except (ConnectionError, ssl.SSLError):
        return True
    return data == b""


async def close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError, ssl.SSLError):
        await writer.wait_closed()
