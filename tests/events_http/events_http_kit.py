"""Helpers for the event-gateway HTTP tests: handlers on a temp embedded log, stub logs."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from meshgate.events.api import ProduceRecord, RecordMetadata
from meshgate.events.errors import BrokerUnavailable
from meshgate.events.http_api.groups import GroupReaders
from meshgate.events.http_api.idempotency import IdempotencyStore
from meshgate.events.http_api.logs import LazyEventLog
from meshgate.events.http_api.replies import ReplyRouter
from meshgate.events.http_api.watch import Watchers
from meshgate.proxy.filters.api import PluginHandler
from meshgate.proxy.filters.testing import FakeContext, PhaseResult, arun_phases, make_handler
from meshgate.snapshot import Consumer

SECRET = "test-cursor-secret-0123456789"


KAFKA_ENV = "MESHGATE_TEST_KAFKA_BOOTSTRAP"


def kafka_bootstrap() -> str:
    """The test broker's address; skips only when the suite runs outside ``make test``
    (which starts Kafka and sets the variable)."""
    value = os.environ.get(KAFKA_ENV)
    if not value:
        pytest.skip(f'{KAFKA_ENV} is not set; start Kafka: eval "$(bash scripts/services/env.sh)"')
    return value


def embedded(tmp: Path, **extra: Any) -> dict[str, Any]:
    return {"embedded": {"path": str(tmp)}, **extra}


def build(
    name: str,
    config: Mapping[str, Any],
    resources: dict[str, Any],
    consumers: Sequence[Consumer] = (),
    instance_id: str | None = None,
) -> PluginHandler:
    instance = {"id": instance_id} if instance_id else None
    return make_handler(name, dict(config), node_resources=resources, consumers=consumers,
                        instance=instance)  # fmt: skip


async def call(handler: PluginHandler | Sequence[PluginHandler], ctx: FakeContext) -> PhaseResult:
    return await arun_phases(handler, ctx)


def body_json(result: PhaseResult) -> Any:
    return json.loads(result.body)


async def close_logs(resources: dict[str, Any]) -> None:
    """Close what handlers opened as node resources (tail tasks first, logs last)."""
    for value in resources.values():
        if isinstance(value, ReplyRouter | Watchers | GroupReaders):
            await value.close()
        elif isinstance(value, IdempotencyStore):
            value.close()
    for value in resources.values():
        if isinstance(value, LazyEventLog):
            await value.close()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


class DownLog:
    """An event log whose every call fails as an unreachable broker."""

    async def produce(self, *args: Any, **kwargs: Any) -> list[RecordMetadata]:
        raise BrokerUnavailable("broker down", retry_after=3)

    async def create_topic(self, *args: Any, **kwargs: Any) -> Any:
        raise BrokerUnavailable("broker down", retry_after=3)


class SlowLog:
    """An event log that never acknowledges."""

    async def produce(self, topic: str, records: Sequence[ProduceRecord], **kw: Any) -> Any:
        await asyncio.Event().wait()


# --------------------------------------------------------------------------- real HTTP helpers


def close_gateway_logs(gw: Any) -> None:
    """Close the event-gateway node resources of a ``live_gateway`` (before it stops)."""
    gw.run(close_logs(gw.runtime._node_resources))


class StreamClient:
    """A raw HTTP/1.1 client for streamed answers (chunked SSE) and WebSocket upgrades."""

    def __init__(self, port: int, path: str, headers: Mapping[str, str] | None = None) -> None:
        import socket

        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        lines = [f"GET {path} HTTP/1.1", "Host: test"]
        lines += [f"{n}: {v}" for n, v in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.buffer = b""
        self.head = b""
        while b"\r\n\r\n" not in self.buffer:
            self._recv()
        self.head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        self.body = b""

    @property
    def status(self) -> int:
        return int(self.head.split(b" ", 2)[1])

    def header(self, name: str) -> str | None:
        for line in self.head.split(b"\r\n")[1:]:
            key, _, value = line.decode("latin-1").partition(":")
            if key.strip().lower() == name.lower():
                return value.strip()
        return None

    def _recv(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("server closed")
        self.buffer += data

    def _dechunk(self) -> None:
        while True:
            size_line, sep, rest = self.buffer.partition(b"\r\n")
            if not sep:
                return
            size = int(size_line.split(b";")[0], 16)
            if len(rest) < size + 2:
                return
            self.body += rest[:size]
            self.buffer = rest[size + 2 :]

    def sse_events(self, count: int) -> list[Any]:
        from meshgate.events.http_api.sse import SseDecoder

        decoder = SseDecoder()
        events: list[Any] = []
        consumed = 0
        while len(events) < count:
            self._dechunk()
            if consumed < len(self.body):
                events += decoder.feed(self.body[consumed:])
                consumed = len(self.body)
                continue
            self._recv()
        return events

    def raw_frames(self, count: int) -> list[tuple[int, bytes]]:
        frames: list[tuple[int, bytes]] = []
        while len(frames) < count:
            buf = self.buffer
            if len(buf) >= 2:
                size, head = buf[1] & 0x7F, 2
                if size == 126 and len(buf) >= 4:
                    size, head = int.from_bytes(buf[2:4], "big"), 4
                if (size < 126 or head == 4) and len(buf) >= head + size:
                    frames.append((buf[0] & 0x0F, buf[head : head + size]))
                    self.buffer = buf[head + size :]
                    continue
            self._recv()
        return frames

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        self.sock.close()
