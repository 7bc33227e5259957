"""The SSE and WebSocket delivery loops, written against small writer protocols.

``StreamWriter`` is what the engine's streaming facility gives (``ctx.stream(...)``): ``write``
waits while the client's write buffer is full, so a slow client holds at most one rendered
batch in memory; when the client vanishes (``wait_closed`` returns) the SSE loop's task is
cancelled at once, whatever it waits for, which frees the reader. Streams at the same position
share rendered blocks (``BlockCache``). ``RawConnection`` is the byte pipe after a WebSocket upgrade. Both loops are
testable with in-memory writers.

SSE: first an id-only block with the start cursor (so a reconnect before any record resumes
at the same place), then one ``data:`` event per record whose ``id`` is the cursor after it,
and a comment line as heartbeat when nothing came for ``heartbeat`` seconds.
WebSocket: one text frame per record, the rendered record plus ``"cursor"``; client pings are
answered, a client close ends the session.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from meshgate.events.api import ConsumedRecord
from meshgate.events.http_api import sse, ws_frames
from meshgate.events.http_api.consume import cursors_along
from meshgate.events.http_api.cursor import Cursor, CursorCodec
from meshgate.events.http_api.problems import HttpProblem
from meshgate.events.http_api.render import dumps
from meshgate.tasks import spawn

Render = Callable[[ConsumedRecord], Any]


class Source(Protocol):
    """Where records come from: a cursor ``Reader``, or a group member (no cursor)."""

    @property
    def cursor(self) -> Cursor | None: ...

    async def read(self, max_records: int, max_wait: float) -> list[ConsumedRecord]: ...


class StreamWriter(Protocol):
    """``meshgate.proxy.filters.api.StreamWriter`` (what ``ctx.stream`` returns)."""

    closed: bool

    async def write(self, data: bytes) -> None: ...

    async def wait_closed(self) -> None: ...

    async def close(self) -> None: ...


class RawConnection(Protocol):
    """``meshgate.proxy.filters.api.RawConnection`` (what ``ctx.upgrade`` returns)."""

    closed: bool

    async def read(self) -> bytes: ...

    async def write(self, data: bytes) -> None: ...

    async def close(self) -> None: ...


async def _read_unless(
    source: Source, max_records: int, max_wait: float, gone: Awaitable[Any]
) -> list[ConsumedRecord] | None:
    """``source.read(...)``, or None as soon as ``gone`` resolves (the client left)."""
    read = asyncio.ensure_future(source.read(max_records, max_wait))
    leaving = asyncio.ensure_future(gone)
    try:
        await asyncio.wait({read, leaving}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        leaving.cancel()
        if not read.done():
            read.cancel()
    if not read.done() or read.cancelled():
        return None
    return read.result()


class _CancelOnClose:
    """Cancels the current task when ``writer`` closes (the client left): one waiter per
    stream instead of racing every read against the close (thousands of streams)."""

    def __init__(self, writer: StreamWriter) -> None:
        self.task = asyncio.current_task()
        self.fired = False
        self.stopped = False
        self.waiter = spawn(writer.wait_closed(), name="events stream close watch")
        self.waiter.add_done_callback(self._fire)

    def _fire(self, _: object) -> None:
        if not self.stopped and self.task is not None:
            self.fired = True
            self.task.cancel()

    def swallow(self) -> bool:
        """In ``except CancelledError``: True when the cancel was ours (then undone)."""
        if self.fired and self.task is not None:
            self.task.uncancel()
            return True
        return False

    def stop(self) -> None:
        self.stopped = True
        self.waiter.cancel()


class BlockCache:
    """Recently rendered SSE blocks of one plugin instance (fixed render and codec): streams
    at the same position render a record once, not once per client."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._blocks: dict[tuple[Any, ...], bytes] = {}

    def get(
        self,
        records: Sequence[ConsumedRecord],
        start: Cursor | None,
        codec: CursorCodec | None,
        render: Render,
    ) -> bytes:
        where = None if start is None else (start.topic, tuple(sorted(start.positions.items())))
        what = tuple((r.topic, r.partition, r.offset, r.timestamp_ms, hash(r.value))
                     for r in records)  # fmt: skip
        key = (where, what, codec is None)
        block = self._blocks.get(key)
        if block is None:
            block = sse_block(records, start, codec, render)
            if len(self._blocks) >= self.size:
                del self._blocks[next(iter(self._blocks))]
            self._blocks[key] = block
        return block


def sse_block(
    records: Sequence[ConsumedRecord],
    start: Cursor | None,
    codec: CursorCodec | None,
    render: Render,
) -> bytes:
    """The SSE events for ``records`` read from ``start``, each with the cursor after it as id
    (no ids without a cursor: group mode)."""
    if start is None or codec is None:
        return b"".join(sse.encode_event(dumps(render(r))) for r in records)
    parts = []
    for record, after in zip(records, cursors_along(start, records), strict=True):
        parts.append(sse.encode_event(dumps(render(record)), event_id=codec.encode(after)))
    return b"".join(parts)


async def run_sse(
    reader: Source,
    writer: StreamWriter,
    codec: CursorCodec | None,
    render: Render,
    *,
    max_records: int = 100,
    heartbeat: float = 15.0,
    retry_ms: int | None = 2000,
    limit: int | None = None,
    blocks: BlockCache | None = None,
) -> int:
    """Stream until the client goes (or ``limit`` records were sent); returns records sent.
    ``blocks``: the plugin instance's cache of rendered blocks (``render``/``codec`` fixed)."""
    sent = 0
    if reader.cursor is not None and codec is not None:
        await writer.write(sse.encode_id(codec.encode(reader.cursor), retry_ms=retry_ms))
    elif retry_ms is not None:
        await writer.write(f"retry: {retry_ms}\n\n".encode())
    guard = _CancelOnClose(writer)
    try:
        while not writer.closed and (limit is None or sent < limit):
            start = reader.cursor
            batch = max_records if limit is None else min(max_records, limit - sent)
            try:
                records = await reader.read(batch, heartbeat)
            except HttpProblem as problem:
                await writer.write(sse.encode_event(dumps(problem.body), event="error"))
                break
            if not records:
                await writer.write(sse.encode_comment("keepalive"))
                continue
            if blocks is not None:
                block = blocks.get(records, start, codec, render)
            else:
                block = sse_block(records, start, codec, render)
            await writer.write(block)
            sent += len(records)
        if not writer.closed:
            await writer.close()
    except ConnectionError:
        pass  # the client left mid-write
    except asyncio.CancelledError:
        if not guard.swallow():
            raise
    finally:
        guard.stop()
    return sent


async def run_websocket(
    reader: Source,
    conn: RawConnection,
    codec: CursorCodec | None,
    render: Render,
    *,
    max_records: int = 100,
    heartbeat: float = 15.0,
    max_message: int = 64 * 1024,
) -> int:
    """Send records as text frames until either side closes; returns records sent."""
    decoder = ws_frames.FrameDecoder(max_message)
    client_gone = asyncio.Event()
    if conn.closed:
        return 0

    async def read_client() -> None:
        try:
            while True:
                data = await conn.read()
                if not data:
                    return
                for message in decoder.feed(data):
                    if message.opcode == ws_frames.OP_PING:
                        await conn.write(ws_frames.encode_frame(ws_frames.OP_PONG, message.payload))
                    elif message.opcode == ws_frames.OP_CLOSE:
                        code = message.close_code or 1000
                        await conn.write(ws_frames.close_frame(code if code < 5000 else 1000))
                        return
        except ws_frames.ProtocolViolation as violation:
            with contextlib.suppress(ConnectionError):
                await conn.write(ws_frames.close_frame(violation.close_code, str(violation)))
        except ConnectionError:
            pass
        finally:
            client_gone.set()

    reading = spawn(read_client(), name="events websocket reader")
    sent = 0
    try:
        while not client_gone.is_set() and not conn.closed:
            start = reader.cursor
            try:
                records = await _read_unless(reader, max_records, heartbeat, client_gone.wait())
            except HttpProblem as problem:
                await conn.write(ws_frames.close_frame(1011, problem.message[:100]))
                break
            if records is None:
                break
            if not records:
                await conn.write(ws_frames.encode_frame(ws_frames.OP_PING, b""))
                continue
            frames = []
            afters = cursors_along(start, records) if start is not None else [None] * len(records)
            for record, after in zip(records, afters, strict=True):
                item = render(record)
                if isinstance(item, dict) and after is not None and codec is not None:
                    item = {**item, "cursor": codec.encode(after)}
                frames.append(ws_frames.encode_frame(ws_frames.OP_TEXT, json.dumps(item).encode()))
            await conn.write(b"".join(frames))
            sent += len(records)
    except ConnectionError:
        pass
    finally:
        reading.cancel()
        if not conn.closed:
            with contextlib.suppress(ConnectionError):
                await conn.close()
    return sent
