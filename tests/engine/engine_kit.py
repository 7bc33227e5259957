"""Test kit for the HTTP engine: stand-in router/balancer, a scriptable upstream, a raw client.

Everything runs in one uvloop event loop per test (``run``); nothing depends on timing luck
beyond the small timeouts a test sets on purpose.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import httptools
import uvloop

from meshgate import snapshot
from meshgate.proxy.compiled import CompiledConfig, CompiledRoute, CompiledService, RuntimeState
from meshgate.proxy.http.accesslog import AccessRecord
from meshgate.proxy.http.serve import drain, engine_for, start_http_listener
from meshgate.proxy.http.settings import ProxySettings
from meshgate.proxy.router import RouteMatch

_open: list[Any] = []  # upstreams and clients made during the current ``run``


def run(coro: Coroutine[Any, Any, Any], timeout: float = 15) -> Any:
    """Run a test coroutine on uvloop; whatever it opened is closed even when it fails
    (an unclosed transport at loop close would otherwise turn into a hang)."""

    async def guarded() -> Any:
        try:
            async with asyncio.timeout(timeout):
                return await coro
        finally:
            for item in reversed(_open):
                item.close()
            _open.clear()
            await asyncio.sleep(0.01)

    return uvloop.run(guarded())


# --------------------------------------------------------------------------- stand-ins


class StubTarget:
    def __init__(self, address: str, port: int) -> None:
        self.address = address
        self.port = port
        self.key = (address, port)
        self.host = address

    def __repr__(self) -> str:
        return f"StubTarget({self.address}:{self.port})"


class StubBalancer:
    """Picks targets in order, skipping excluded ones; records everything it is told."""

    needs_request_data = False

    def __init__(self, targets: list[StubTarget]) -> None:
        self.targets = targets
        self.reports: list[tuple[StubTarget, str, int | None]] = []
        self.started = 0
        self.ended = 0
        self.picked: list[StubTarget] = []
        self.next = 0

    def pick(self, req: Any, exclude: Any = ()) -> StubTarget | None:
        for i in range(len(self.targets)):
            target = self.targets[(self.next + i) % len(self.targets)]
            if target not in exclude:
                self.picked.append(target)
                return target
        return None

    def on_request_start(self, t: StubTarget) -> None:
        self.started += 1

    def on_request_end(self, t: StubTarget, elapsed_s: float) -> None:
        self.ended += 1

    def report(self, t: StubTarget, outcome: str, status: int | None = None) -> None:
        self.reports.append((t, outcome, status))


class StubRouter:
    """Prefix routes, optionally restricted to hosts; upstream path = the request path."""

    uses_headers = False

    def __init__(self, routes: list[tuple[str, CompiledRoute]]) -> None:
        self.routes = routes

    def match(
        self,
        method: str,
        host: str,
        path: str,
        headers: Any = None,
        sni: str | None = None,
    ) -> RouteMatch[CompiledRoute] | None:
        hostname = host.split(":")[0]
        for prefix, croute in self.routes:
            route = croute.route
            if route.hosts and hostname not in route.hosts:
                continue
            if path.startswith(prefix):
                return RouteMatch(route, croute, prefix, path, {}, path, path[1:])
        return None

    def match_head(
        self,
        method: bytes,
        host: bytes | None,
        raw_path: bytes,
        headers: Any,
        sni: str | None = None,
    ) -> RouteMatch[CompiledRoute] | None:
        host_text = host.decode("latin-1").lower() if host else ""
        return self.match(method.decode(), host_text, raw_path.decode(), None, sni)


def make_service(
    ports: list[int],
    *,
    name: str = "svc",
    retries: int = 0,
    connect_timeout: float = 2.0,
    read_timeout: float = 5.0,
    write_timeout: float = 5.0,
    host_header: str = "upstream.internal",
    ssl_context: Any = None,
    server_hostname: str | None = None,
    addresses: list[str] | None = None,
) -> CompiledService:
    addrs = addresses or ["127.0.0.1"] * len(ports)
    balancer = StubBalancer([StubTarget(a, p) for a, p in zip(addrs, ports, strict=True)])
    svc = snapshot.Service(
        id=f"{name}-id", name=name, host="upstream.internal", port=ports[0] if ports else 80,
        cluster="c", retries=retries,
    )  # fmt: skip
    return CompiledService(
        service=svc,
        balancer=balancer,  # type: ignore[arg-type]
        scheme="https" if ssl_context else "http",
        host_header=host_header,
        path=None,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        write_timeout=write_timeout,
        retries=retries,
        ssl_context=ssl_context,
        server_hostname=server_hostname,
    )


def make_route(service: CompiledService | None, **fields: Any) -> CompiledRoute:
    protocols = fields.pop("protocols", ("http", "https"))
    route = snapshot.Route(
        id=fields.pop("id", "route-1"),
        name=fields.pop("name", "r1"),
        paths=("/",),
        protocols=protocols,
        strip_path=False,
        service=service.service.id if service else None,
        **fields,
    )
    return CompiledRoute(
        route=route,
        service=service,
        https_only="http" not in protocols,
        http_only="https" not in protocols,
    )


def make_config(routes: list[tuple[str, CompiledRoute]], version: str = "v1") -> CompiledConfig:
    return CompiledConfig(version=version, router=StubRouter(routes))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- upstream


@dataclass
class Seen:
    method: str
    url: str
    headers: list[tuple[str, str]]
    body: bytes


Handler = Callable[["UpstreamConn", Seen], Awaitable[None] | None]


class UpstreamConn(asyncio.Protocol):
    def __init__(self, server: TestUpstream) -> None:
        self.server = server
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.current: Seen | None = None
        self.url = b""
        self.writable = asyncio.Event()
        self.writable.set()
        self.pauses = 0

    def pause_writing(self) -> None:
        self.pauses += 1
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    async def stream(self, total: int, chunk: int = 65536) -> int:
        """Write ``total`` bytes, honouring flow control; returns bytes written."""
        piece = b"x" * chunk
        sent = 0
        while sent < total:
            await self.writable.wait()
            if self.transport is None or self.transport.is_closing():
                break
            n = min(chunk, total - sent)
            self.transport.write(piece[:n])
            sent += n
            self.server.streamed = sent
        return sent

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.connections += 1
        self.server.open.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.open.discard(self)

    def data_received(self, data: bytes) -> None:
        if not self.server.discard_body:
            self.server.raw.append(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self.server.upgraded_leftover = data[upgrade.args[0] :]
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.close()

    def on_message_begin(self) -> None:
        self.current = Seen("", "", [], b"")
        self.url = b""

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        assert self.current is not None
        self.current.headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        assert self.current is not None
        self.current.method = self.parser.get_method().decode()
        self.current.url = self.url.decode("latin-1")
        if self.server.on_head is not None:
            self.server.on_head(self, self.current)

    def on_body(self, body: bytes) -> None:
        assert self.current is not None
        self.server.body_bytes += len(body)
        if not self.server.discard_body:
            self.current.body += body

    def on_message_complete(self) -> None:
        seen = self.current
        assert seen is not None
        self.server.requests.append(seen)
        self.server.arrived.set()
        result = self.server.handler(self, seen)
        if asyncio.iscoroutine(result):
            self.background(result)

    def background(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        self.server.tasks.add(task)
        task.add_done_callback(self.server.tasks.discard)

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)


def echo_handler(conn: UpstreamConn, seen: Seen) -> None:
    body = json.dumps(
        {
            "name": conn.server.name,
            "method": seen.method,
            "url": seen.url,
            "headers": seen.headers,
            "body_len": len(seen.body),
        }
    ).encode()
    conn.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nServer: test-upstream\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body) + body
    )


class TestUpstream:
    __test__ = False

    def __init__(self, name: str = "up", handler: Handler = echo_handler) -> None:
        self.name = name
        self.handler = handler
        self.on_head: Callable[[UpstreamConn, Seen], None] | None = None
        self.connections = 0
        self.requests: list[Seen] = []
        self.raw: list[bytes] = []
        self.open: set[UpstreamConn] = set()
        self.body_bytes = 0
        self.discard_body = False
        self.upgraded_leftover = b""
        self.streamed = 0
        self.tasks: set[asyncio.Future[Any]] = set()
        self.arrived = asyncio.Event()
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self, ssl: Any = None) -> TestUpstream:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: UpstreamConn(self), "127.0.0.1", 0, ssl=ssl)
        _open.append(self)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def wait_requests(self, count: int) -> None:
        """Until ``count`` requests have arrived in all."""
        while len(self.requests) < count:
            self.arrived.clear()
            await self.arrived.wait()

    def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        if self.server is not None:
            self.server.close()
        for conn in list(self.open):
            if conn.transport is not None:
                conn.transport.abort()


# --------------------------------------------------------------------------- proxy


@dataclass
class Proxy:
    state: RuntimeState
    settings: ProxySettings
    server: asyncio.Server
    records: list[AccessRecord] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.server.sockets[0].getsockname()[1])

    @property
    def engine(self) -> Any:
        return engine_for(self.state, self.settings)


@contextlib.asynccontextmanager
async def proxy(
    config: CompiledConfig,
    *,
    protocol: str = "http",
    **settings_fields: Any,
) -> AsyncIterator[Proxy]:
    records: list[AccessRecord] = []
    settings_fields.setdefault("timer_resolution", 0.05)
    settings = ProxySettings(on_access=records.append, **settings_fields)
    state = RuntimeState(config=config)
    listener = snapshot.Listener(
        name="test", address="127.0.0.1", port=0, protocol=protocol, reuse_port=False
    )  # type: ignore[arg-type]
    server = await start_http_listener(listener, state, settings)
    try:
        yield Proxy(state, settings, server, records)
    finally:
        await drain([server], 1.0)


# --------------------------------------------------------------------------- client


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    keep_alive: bool

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def header_all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self) -> Any:
        return json.loads(self.body)


class _ResponseReader:
    def __init__(self, head_only: bool = False) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.done: list[Response] = []
        self.headers: list[tuple[str, str]] = []
        self.body = bytearray()
        self.head_only = head_only

    def on_message_begin(self) -> None:
        self.headers = []
        self.body = bytearray()

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        if self.head_only:
            self._complete()
            raise _HeadDone

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self._complete()

    def _complete(self) -> None:
        self.done.append(
            Response(
                self.parser.get_status_code(),
                self.headers,
                bytes(self.body),
                self.parser.should_keep_alive(),
            )
        )


class _HeadDone(Exception):
    pass


class Client:
    """A raw HTTP/1.1 client connection; responses are parsed as they arrive, in order."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.eof = False
        self.rr = _ResponseReader()

    @classmethod
    async def connect(
        cls, port: int, ssl: Any = None, server_hostname: str | None = None
    ) -> Client:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=ssl, server_hostname=server_hostname
        )
        client = cls(reader, writer)
        _open.append(client)
        return client

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def response(self, *, head_only: bool = False) -> Response:
        """The next response (for a HEAD request pass ``head_only``)."""
        rr = self.rr
        rr.head_only = head_only
        while not rr.done:
            data = await self.reader.read(65536)
            if not data:
                self.eof = True
                if rr.headers or rr.body:  # close-delimited body
                    status = rr.parser.get_status_code()
                    return Response(status, rr.headers, bytes(rr.body), False)
                raise ConnectionError("closed before a response")
            try:
                rr.parser.feed_data(data)
            except httptools.HttpParserCallbackError:
                self.rr = _ResponseReader()
        return rr.done.pop(0)

    async def closed(self) -> bool:
        """True when the server closes the connection (within two seconds)."""
        try:
            async with asyncio.timeout(2):
                data = await self.reader.read(65536)
        except TimeoutError:
            return False
        except ConnectionError:
            return True
        return data == b""

    def close(self) -> None:
        if not self.writer.is_closing():
            self.writer.transport.abort()


async def request(port: int, raw: bytes) -> Response:
    """One request on a new connection."""
    client = await Client.connect(port)
    try:
        await client.send(raw)
        return await client.response(head_only=raw.startswith(b"HEAD "))
    finally:
        client.close()


def get(path: str = "/", host: str = "example.com", extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode()
