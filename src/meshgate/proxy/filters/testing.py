"""Test kit for plugin authors: run a handler's phases on a fake request, no server needed.

    from meshgate.proxy.filters.testing import FakeContext, make_handler, run_phases

    handler = make_handler("key-auth", {"key_names": ["apikey"]}, consumers=[alice])
    ctx = FakeContext("GET", "/orders", headers={"apikey": "secret"})
    result = run_phases(handler, ctx)              # rewrite, access, response, body, log
    assert result.exit is None and ctx.consumer == alice
    assert ctx.upstream_headers()["x-consumer-id"] == [alice.id]

``make_handler(plugin, config, ...)`` builds a handler the way the runtime does: ``plugin`` is a
bundled/enabled plugin name or a ``PluginHandler`` subclass (its ``Config`` is found as the
registry would: a ``Config`` class attribute, else ``<package>.schema.Config``); ``config`` is
validated (``ConfigError`` with ``config.<field>`` paths) and defaults are filled; the
``CompileEnv`` is a real ``SnapshotEnv`` over ``snapshot`` (or one holding ``consumers``).
``node_resources`` (a dict) is shared across handlers built with the same dict, as
node-wide resources are across snapshots.

``FakeContext`` IS the engine's context (``HttpContext``) over a synthesized request, so every
phase check, header rule and serializer behaves as in production.  Arguments: ``method``,
``path`` (may include ``?query``), ``headers`` (mapping name -> str | list of str, or pairs),
``body`` (bytes), ``client_ip``, ``scheme``, ``host``, ``port``, ``route``/``service``
(snapshot models), ``consumer``/``credential`` (pre-authenticated), ``uri_captures``,
``phase`` (default ACCESS, for calling context methods directly).  The body is readable with
``raw_body()``/``await body()`` only when a handler run on it has ``needs_body`` (or
``body_buffered=True``), as in the engine.

What to assert on after running:
  ``ctx.upstream_headers()``  request headers as they go upstream (lower-case -> [values])
  ``ctx.upstream_method`` / ``upstream_path`` / ``upstream_query`` (None: unchanged)
  ``ctx.forwarded_body``      the body that goes upstream
  ``ctx.consumer`` / ``ctx.credential`` / ``ctx.shared``
  ``result.exit``             the ``Exit`` a plugin raised (status, body, headers) or None
  ``result.status`` / ``result.headers`` / ``result.body``  the response the client gets
  ``ctx.logged``              ``ctx.serialize()`` as taken in the log phase (if asked)

``ctx.stream()``/``ctx.upgrade()`` return a ``FakeStream`` (``ctx.answer``): ``sent`` holds what
the plugin wrote, ``feed(data)`` plays client bytes, ``disconnect()`` a client that leaves.
Drive such a handler yourself: ``await handler.access(ctx)`` inside ``asyncio.run``.

``run_phases(handlers, ctx, upstream=(status, headers, body))`` runs one handler or several
(ordered by PRIORITY, like a chain; ``rewrite`` runs for all of them, as they are global);
``upstream`` is the response the fake service gives when nobody exits; ``chunks`` splits its
body for the body phase.  A handler that returns an awaitable is awaited: in a plain test
``run_phases`` starts an event loop; inside a running loop use ``await arun_phases(...)``.
Plugin exceptions propagate (the engine would answer 500 instead).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from meshgate.proxy.filters.api import Exit, Phase, PhaseError, PluginHandler
from meshgate.proxy.filters.chain import Bound, Chain, Slot, _make_chain
from meshgate.proxy.filters.context import HttpContext
from meshgate.proxy.filters.env import SnapshotEnv
from meshgate.proxy.filters.registry import PluginRegistry, default_registry, spec_from_handler
from meshgate.proxy.filters.runner import advance, collect_rest, later_phases
from meshgate.proxy.http.clock import monotonic
from meshgate.proxy.http.heads import scan_request_headers
from meshgate.proxy.http.request import ProxyRequest
from meshgate.snapshot import Consumer, PluginInstance, Route, Service, Snapshot

if TYPE_CHECKING:
    from meshgate.proxy.http.server import HttpProxyProtocol

HeadersIn = Mapping[str, str | Sequence[str]] | Sequence[tuple[str, str]]

__all__ = ["FakeContext", "PhaseResult", "arun_phases", "make_handler", "run_phases"]


def _pairs(headers: HeadersIn) -> list[tuple[str, str]]:
    if isinstance(headers, Mapping):
        out: list[tuple[str, str]] = []
        for name, value in headers.items():
            values = [value] if isinstance(value, str) else list(value)
            out += [(name, v) for v in values]
        return out
    return list(headers)


class FakeStream:
    """What ``FakeContext.stream``/``upgrade`` return: records what the plugin writes.

    ``sent`` holds the written pieces; ``feed(data)`` plays client bytes for ``read()``;
    ``disconnect()`` plays a client that leaves (writes then raise ``ConnectionError``).
    """

    def __init__(self, status: int, headers: Mapping[str, str] | None) -> None:
        self.status = status
        self.headers = dict(headers or {})
        self.sent: list[bytes] = []
        self.closed = False
        self.ended = False
        self._incoming: asyncio.Queue[bytes] = asyncio.Queue()
        self._gone = asyncio.Event()

    async def write(self, data: bytes) -> None:
        if self.closed:
            raise ConnectionError("the client connection is closed")
        self.sent.append(data)

    async def read(self) -> bytes:
        if self.closed and self._incoming.empty():
            return b""
        return await self._incoming.get()

    async def wait_closed(self) -> None:
        await self._gone.wait()

    async def close(self) -> None:
        self.closed = self.ended = True
        self._gone.set()
        self._incoming.put_nowait(b"")

    def feed(self, data: bytes) -> None:
        self._incoming.put_nowait(data)

    def disconnect(self) -> None:
        self.closed = True
        self._gone.set()
        self._incoming.put_nowait(b"")


class FakeContext(HttpContext):
    """A ``RequestContext`` for unit tests (see the module docstring)."""

    answer: FakeStream | None = None  # what stream()/upgrade() returned

    def __init__(
        self,
        method: str = "GET",
        path: str = "/",
        *,
        headers: HeadersIn = (),
        body: bytes | None = None,
        client_ip: str = "127.0.0.1",
        scheme: str = "http",
        host: str = "example.test",
        port: int | None = None,
        route: Route | None = None,
        service: Service | None = None,
        consumer: Consumer | None = None,
        credential: Mapping[str, Any] | None = None,
        uri_captures: Mapping[str, str] | None = None,
        phase: Phase = Phase.ACCESS,
        body_buffered: bool = False,
        take_log: bool = True,
    ) -> None:
        req = ProxyRequest(client_ip, monotonic())
        req.method = method.upper().encode()
        raw_path, sep, raw_query = path.encode("utf-8").partition(b"?")
        req.raw_path = raw_path or b"/"
        req.raw_query = raw_query if sep else None
        req.url = path.encode("utf-8")
        pairs = _pairs(headers)
        names = {n.lower() for n, _ in pairs}
        if "host" not in names:
            pairs.insert(0, ("Host", host))
        if body is not None and "content-length" not in names and "transfer-encoding" not in names:
            pairs.append(("Content-Length", str(len(body))))
        req.headers = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in pairs]
        scan_request_headers(req.headers, req)
        req.headers_done = True
        req.has_body = req.chunked or req.content_length > 0
        req.message_complete = True
        req.body_received = len(body or b"")
        req.head_size = sum(len(n) + len(v) + 4 for n, v in req.headers)
        req.uri_captures = dict(uri_captures or {})
        super().__init__(
            req,
            scheme=scheme,
            port=port if port is not None else (8443 if scheme == "https" else 8000),
            route=route,
            service=service,
        )
        self._original_body = body
        if body_buffered:
            self.upstream_body = body
        self.phase = phase
        self.logged: dict[str, Any] | None = None
        self.take_log = take_log
        if consumer is not None or credential is not None:
            saved, self.phase = self.phase, Phase.ACCESS
            self.authenticate(consumer, credential)
            self.phase = saved

    def buffer_body(self) -> None:
        """What the engine does for a route with a ``needs_body`` handler."""
        if self.upstream_body is None and self._original_body is not None:
            self.upstream_body = self._original_body

    def stream(self, status: int, headers: Mapping[str, str] | None = None) -> FakeStream:
        self._check(frozenset({Phase.REWRITE, Phase.ACCESS}), "stream")
        self.answer = FakeStream(status, headers)
        self.status = status
        return self.answer

    def upgrade(self, headers: Mapping[str, str] | None = None) -> FakeStream:
        self._check(frozenset({Phase.REWRITE, Phase.ACCESS}), "upgrade")
        if self.req.upgrade is None:
            raise PhaseError("upgrade() needs a WebSocket upgrade request")
        self.answer = FakeStream(101, headers)
        self.status = 101
        return self.answer

    def upstream_headers(self) -> dict[str, list[str]]:
        """The request headers as they would go upstream (lower-case name -> values)."""
        return {name: list(values) for name, values in self.headers().items()}

    @property
    def forwarded_body(self) -> bytes:
        if self.upstream_body is not None:
            return self.upstream_body
        return self._original_body or b""


@dataclass
class PhaseResult:
    """What the client would get."""

    exit: Exit | None
    status: int
    headers: dict[str, list[str]] = field(default_factory=dict)
    body: bytes = b""


def detached_client(loop: asyncio.AbstractEventLoop | None = None) -> HttpProxyProtocol:
    """A client connection with no socket and no runtime behind it: what a ``ProxyContext``
    driven outside a server holds (benches, log-phase tests). The engine's own class, so that
    a compiled engine, which checks the types it is handed, takes it too."""
    from meshgate.proxy.http.engine import HttpEngine
    from meshgate.proxy.http.server import HttpProxyProtocol
    from meshgate.proxy.http.settings import ProxySettings

    engine = HttpEngine(None, ProxySettings(), loop)  # type: ignore[arg-type]  # state: never read
    client = HttpProxyProtocol(engine, tls=False)
    client.port_bytes = b"8000"
    return client


def make_handler(
    plugin: str | type[PluginHandler],
    config: Mapping[str, Any] | None = None,
    *,
    consumers: Sequence[Consumer] = (),
    snapshot: Snapshot | None = None,
    instance: Mapping[str, Any] | None = None,
    registry: PluginRegistry | None = None,
    node_resources: dict[str, Any] | None = None,
) -> PluginHandler:
    """A handler built as the runtime builds it (config validated, defaults filled).

    ``instance`` holds extra ``PluginInstance`` fields (route, service, consumer, ordering…).
    """
    if isinstance(plugin, str):
        spec = (registry or default_registry()).get(plugin)
    else:
        spec = spec_from_handler(plugin.name or plugin.__name__, plugin, "test")
    validating = PluginRegistry(())
    validating.register(spec)
    model = validating.compile_config(spec.name, config or {})
    fields = {"id": f"{spec.name}-instance", "name": spec.name, **(instance or {})}
    inst = PluginInstance(**fields, config=model.model_dump(mode="json"))
    snap = snapshot if snapshot is not None else Snapshot(consumers=tuple(consumers))
    return spec.handler(model, inst, SnapshotEnv(snap, node_resources))


def chain_of(handlers: PluginHandler | Sequence[PluginHandler]) -> Chain:
    """A chain of these handlers, ordered as the runtime orders them."""
    items = [handlers] if isinstance(handlers, PluginHandler) else list(handlers)
    slots = [Slot(h.instance.name, Bound(h, h.instance)) for h in items]
    chain = _make_chain(slots)
    chain.rewrite = tuple(s.base for s in slots if s.base is not None and s.base.rewrite)
    chain.rewrite = tuple(sorted(chain.rewrite, key=lambda b: b.rank))
    return chain


def run_phases(
    handlers: PluginHandler | Sequence[PluginHandler],
    ctx: FakeContext,
    *,
    upstream: tuple[int, Mapping[str, str], bytes] = (200, {}, b""),
    chunks: Sequence[bytes] | None = None,
) -> PhaseResult:
    """Run every phase synchronously; an awaiting plugin gets an event loop of its own."""
    chain = chain_of(handlers)
    if chain.needs_body:
        ctx.buffer_body()
    pending = _sync_request_phases(ctx, chain, 0)
    if pending is not None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(_finish_async(ctx, chain, pending, upstream, chunks))
        raise RuntimeError("a handler awaited inside a running loop: use await arun_phases()")
    return _after_access(ctx, chain, upstream, chunks)


async def arun_phases(
    handlers: PluginHandler | Sequence[PluginHandler],
    ctx: FakeContext,
    *,
    upstream: tuple[int, Mapping[str, str], bytes] = (200, {}, b""),
    chunks: Sequence[bytes] | None = None,
) -> PhaseResult:
    """``run_phases`` for tests that already run an event loop."""
    chain = chain_of(handlers)
    if chain.needs_body:
        ctx.buffer_body()
    pending = _sync_request_phases(ctx, chain, 0)
    if pending is None:
        return _after_access(ctx, chain, upstream, chunks)
    return await _finish_async(ctx, chain, pending, upstream, chunks)


_Pending = tuple[int, Awaitable[None]] | Exit | None


def _sync_request_phases(ctx: FakeContext, chain: Chain, start: int) -> _Pending:
    try:
        return advance(ctx, chain, start)
    except Exit as exit_:
        return exit_


async def _finish_async(
    ctx: FakeContext,
    chain: Chain,
    pending: _Pending,
    upstream: tuple[int, Mapping[str, str], bytes],
    chunks: Sequence[bytes] | None,
) -> PhaseResult:
    while isinstance(pending, tuple):
        index, awaitable = pending
        try:
            await awaitable
        except Exit as exit_:
            pending = exit_
            break
        pending = _sync_request_phases(ctx, chain, index)
    if isinstance(pending, Exit):
        ctx.exited = pending
    return _after_access(ctx, chain, upstream, chunks)


def _after_access(
    ctx: FakeContext,
    chain: Chain,
    upstream: tuple[int, Mapping[str, str], bytes],
    chunks: Sequence[bytes] | None,
) -> PhaseResult:
    exit_ = ctx.exited
    if exit_ is not None:
        collect_rest(ctx, chain)
    responders, body_filters, loggers = later_phases(ctx, chain)
    if exit_ is not None:
        status, lines, pieces = exit_.status, _lines(exit_.headers), [exit_.body or b""]
    else:
        status, headers, body = upstream
        lines = _lines(list(headers.items()))
        pieces = list(chunks) if chunks is not None else [body]
    ctx.start_response(status, lines)
    try:
        for b in responders:
            ctx.plugin = b.name
            b.response(ctx)  # type: ignore[misc]
    except Exit as late:
        ctx.exited = exit_ = late
        ctx.start_response(late.status, _lines(late.headers))
        pieces = [late.body or b""]
    ctx.phase = Phase.BODY
    out = [_filter(ctx, body_filters, piece, False) for piece in pieces if piece]
    out.append(_filter(ctx, body_filters, b"", True))
    body_out = b"".join(out)
    table = ctx.response_table
    result = PhaseResult(
        exit=exit_,
        status=ctx.status,
        headers={n: list(v) for n, v in table.values.items()} if table is not None else {},
        body=body_out,
    )
    ctx.bytes_sent = len(body_out)
    ctx.t_end = monotonic()
    ctx.phase = Phase.LOG
    for b in loggers:
        ctx.plugin = b.name
        b.log(ctx)  # type: ignore[misc]
    if ctx.take_log:
        ctx.logged = ctx.serialize()
    return result


def _filter(ctx: FakeContext, handlers: Sequence[Bound], chunk: bytes, eof: bool) -> bytes:
    for b in handlers:
        ctx.plugin = b.name
        chunk = b.body(ctx, chunk, eof)  # type: ignore[misc]
    return chunk


def _lines(headers: Sequence[tuple[str, str]]) -> list[bytes]:
    return [f"{n}: {v}\r\n".encode("latin-1") for n, v in headers]
