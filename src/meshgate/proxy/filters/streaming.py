"""Plugin-made responses that are not one buffer: a streamed body (``ctx.stream``) and a
connection taken over after ``101 Switching Protocols`` (``ctx.upgrade``).

Both are used from inside the awaitable a plugin's ``access`` returned.  Writes apply the
client's back-pressure (they wait while its write buffer is above the high-water mark);
a client that goes away makes ``closed`` true, wakes every waiter and makes writes raise
``ConnectionError``.

A client leaving a streamed response is noticed at once: the server protocol's
``connection_lost``/``eof_received`` call ``ProxyContext.client_gone``.  As a fallback, one
watcher per loop (running only while streams are open) looks at every open stream's connection
every ``GONE_POLL_INTERVAL``.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING

from meshgate import tasks
from meshgate.proxy.filters.api import PhaseError
from meshgate.proxy.filters.headers import check_header
from meshgate.proxy.filters.runner import run_response
from meshgate.proxy.http.heads import CRLF

if TYPE_CHECKING:
    from meshgate.proxy.filters.flow import ProxyContext
    from meshgate.proxy.http.server import HttpProxyProtocol

_LAST_CHUNK = b"0\r\n\r\n"
_log = logging.getLogger("meshgate.plugins")
GONE_POLL_INTERVAL = 0.25


class _Waiters:
    """Futures woken together (drain, close)."""

    __slots__ = ("_futures",)

    def __init__(self) -> None:
        self._futures: list[asyncio.Future[None]] = []

    async def wait(self) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._futures.append(future)
        await future

    def wake(self) -> None:
        futures, self._futures = self._futures, []
        for future in futures:
            if not future.done():
                future.set_result(None)


class ResponseStream:
    """Implements ``StreamWriter``: the body of a response whose head is already sent."""

    def __init__(
        self, ctx: ProxyContext, status: int, *, chunked: bool, close: bool, head_only: bool
    ) -> None:
        self.ctx = ctx
        self.client: HttpProxyProtocol = ctx.client
        self.status = status
        self.chunked = chunked
        self.close_after = close
        self.head_only = head_only
        self.closed = False
        self.finished = False  # the engine was told the response is complete
        self.bytes_sent = 0
        self._drain = _Waiters()
        self._close = _Waiters()

    async def write(self, data: bytes) -> None:
        if self.closed:
            raise ConnectionError("the client connection is closed")
        if data and not self.head_only:
            transport = self.client.transport
            if self.chunked:
                transport.writelines([b"%x\r\n" % len(data), data, CRLF])
                self.bytes_sent += len(data) + len(b"%x" % len(data)) + 4
            else:
                transport.write(data)
                self.bytes_sent += len(data)
        while self.client.write_paused and not self.closed:
            await self._drain.wait()
        if self.closed:
            raise ConnectionError("the client connection is closed")

    async def wait_closed(self) -> None:
        if not self.closed:
            await self._close.wait()

    async def close(self) -> None:
        self.end()

    def end(self) -> None:
        """Finish the response (last chunk); the request is done, its log phase runs."""
        if self.finished:
            return
        self.finished = True
        was_closed = self.closed
        self.closed = True
        if not was_closed:
            if self.chunked and not self.head_only:
                self.client.transport.write(_LAST_CHUNK)
                self.bytes_sent += len(_LAST_CHUNK)
            self.client.end_stream(self.ctx.req, self.status, self.bytes_sent, self.close_after)
        self._drain.wake()
        self._close.wake()

    # engine callbacks
    def resumed(self) -> None:
        self._drain.wake()

    def gone(self) -> None:
        self.closed = True
        self.finished = True
        self._drain.wake()
        self._close.wake()

    def client_left(self) -> None:
        """The client closed its side mid-stream: stop the writer and drop the connection (a
        FIN alone leaves it half-open; the access log records the 499 when it is lost)."""
        if self.finished:
            return
        self.gone()
        if not self.client.closed:
            self.client.transport.abort()


class _GoneWatch:
    """The open streams of one loop, checked every ``GONE_POLL_INTERVAL`` for a client that
    left; the task runs only while streams are open."""

    def __init__(self) -> None:
        self.streams: set[ResponseStream] = set()
        self.task: asyncio.Task[None] | None = None

    def add(self, stream: ResponseStream) -> None:
        self.streams.add(stream)
        if self.task is None:
            self.task = tasks.spawn(self._watch(), name="streamed responses: client gone watch")

    async def _watch(self) -> None:
        try:
            while self.streams:
                await asyncio.sleep(GONE_POLL_INTERVAL)
                for stream in list(self.streams):
                    client = stream.client
                    if stream.finished:
                        self.streams.discard(stream)
                    elif client.closed or client.half_closed:
                        self.streams.discard(stream)
                        stream.client_left()
        finally:
            self.task = None


_watches: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _GoneWatch] = (
    weakref.WeakKeyDictionary()
)


def _watch_gone(stream: ResponseStream) -> None:
    loop = asyncio.get_running_loop()
    watch = _watches.get(loop)
    if watch is None:
        watch = _watches[loop] = _GoneWatch()
    watch.add(stream)


class RawPipe:
    """Implements ``RawConnection``: the client connection after a plugin's 101."""

    def __init__(self, client: HttpProxyProtocol, high_water: int) -> None:
        self.client = client
        self.closed = False
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._high_water = high_water
        self._reading_paused = False
        self._paused_writing = False
        self._readable = _Waiters()
        self._drain = _Waiters()

    async def read(self) -> bytes:
        while not self._buffer and not self.closed:
            await self._readable.wait()
        if not self._buffer:
            return b""
        data = b"".join(self._buffer)
        self._buffer = []
        self._buffered = 0
        if self._reading_paused and not self.closed:
            self._reading_paused = False
            self.client.transport.resume_reading()
        return data

    async def write(self, data: bytes) -> None:
        if self.closed:
            raise ConnectionError("the client connection is closed")
        self.client.transport.write(data)
        while self._paused_writing and not self.closed:
            await self._drain.wait()
        if self.closed:
            raise ConnectionError("the client connection is closed")

    async def close(self) -> None:
        if not self.closed:
            self.client.transport.close()
        self.client_closed()

    # the server's pipe interface (as ``Tunnel``)
    def from_client(self, data: bytes) -> None:
        if self.closed:
            return
        self._buffer.append(data)
        self._buffered += len(data)
        if self._buffered > self._high_water and not self._reading_paused:
            self._reading_paused = True
            self.client.transport.pause_reading()
        self._readable.wake()

    def client_write_paused(self, paused: bool) -> None:
        self._paused_writing = paused
        if not paused:
            self._drain.wake()

    def client_closed(self) -> None:
        self.closed = True
        self._readable.wake()
        self._drain.wake()


def _header_lines(headers: Mapping[str, str] | None, *, upgrade: bool = False) -> list[bytes]:
    lines = []
    for name, value in (headers or {}).items():
        check_header(name, value, any_name=upgrade)
        lines.append(f"{name}: {value}\r\n".encode("latin-1"))
    return lines


def start_stream(
    ctx: ProxyContext, status: int, headers: Mapping[str, str] | None
) -> ResponseStream:
    """``ctx.stream``: run the response phase on the head, send it, hand back the writer."""
    if ctx.answer is not None:
        raise PhaseError("the request is already answered")
    if not 200 <= status <= 599:
        raise ValueError(f"invalid status {status} for a streamed response")
    lines = _header_lines(headers)
    ctx.start_response(status, lines)
    run_response(ctx, ctx.later_phases()[0])
    table = ctx.response_table
    if table is not None and table.changed:
        lines = table.apply(lines)
    ctx.response_lines = lines
    req = ctx.req
    chunked, close = ctx.client.start_stream(req, status, lines)
    stream = ResponseStream(
        ctx, status, chunked=chunked, close=close, head_only=req.method == b"HEAD"
    )
    ctx.answer = stream
    _watch_gone(stream)
    return stream


def start_upgrade(ctx: ProxyContext, headers: Mapping[str, str] | None) -> RawPipe:
    """``ctx.upgrade``: answer 101 and hand the client connection over to the plugin."""
    if ctx.answer is not None:
        raise PhaseError("the request is already answered")
    req = ctx.req
    if req.upgrade is None:
        raise PhaseError("upgrade() needs a WebSocket upgrade request")
    lines = _header_lines(headers, upgrade=True)
    ctx.status = 101
    ctx.response_lines = lines
    pipe = RawPipe(ctx.client, ctx.client.settings.high_water)
    ctx.answer = pipe
    head = b"".join([b"HTTP/1.1 101 Switching Protocols\r\n", *lines, CRLF])
    ctx.client.take_over(req, head, pipe)
    return pipe


def end_answer(ctx: ProxyContext) -> None:
    """The plugin that streamed (or took the connection) is through: end what it left open."""
    answer = ctx.answer
    if isinstance(answer, ResponseStream):
        answer.end()
    elif answer is not None and not answer.closed:
        ctx.client.transport.close()


def break_answer(ctx: ProxyContext) -> None:
    """A plugin raised after starting its own answer: nothing sane can follow; cut."""
    route = ctx.croute.route
    _log.error("plugin %s failed after answering (route %s)", ctx.plugin, route.id, exc_info=True)
    answer = ctx.answer
    if isinstance(answer, ResponseStream):
        answer.gone()
    if not ctx.client.closed:
        ctx.client.transport.abort()
