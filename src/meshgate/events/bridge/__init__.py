"""Sharing one embedded event log among a node's processes over a unix socket.

The embedded log may be opened by one process only. That process serves it
(``EventLogServer``); the others use ``RemoteEventLog``, an ``EventLog`` like any other.

Wiring (recommended): the supervisor calls ``serve_embedded_log(root, socket_path)`` at node
start and closes the returned ``ServedEventLog`` at shutdown; every worker calls
``RemoteEventLog(socket_path)`` with ``socket_path = event_socket_path()`` (from the
``MESHGATE_RUNTIME_DIR`` it inherits). ``open_shared_event_log`` is the lock-race form for when
there is no supervisor: whoever takes the lock serves, everyone else connects.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from meshgate.events.api import (
    Acks,
    EventLog,
    FetchResult,
    GroupMember,
    OffsetReset,
    ProduceRecord,
    RecordMetadata,
    TopicInfo,
)
from meshgate.events.bridge.client import RemoteEventLog, RemoteGroupMember
from meshgate.events.bridge.server import EventLogServer
from meshgate.events.embedded import EmbeddedEventLog
from meshgate.events.errors import EventLogError, LogLocked

SOCKET_NAME = "events.sock"

__all__ = [
    "EventLogServer",
    "RemoteEventLog",
    "RemoteGroupMember",
    "ServedEventLog",
    "event_socket_path",
    "open_shared_event_log",
    "serve_embedded_log",
]


def event_socket_path(runtime_dir: str | Path | None = None) -> str:
    """``<runtime dir>/events.sock``; the runtime dir defaults to ``$MESHGATE_RUNTIME_DIR``."""
    directory = runtime_dir or os.environ.get("MESHGATE_RUNTIME_DIR")
    if not directory:
        raise EventLogError("MESHGATE_RUNTIME_DIR is not set; no place for the event log socket")
    return str(Path(directory) / SOCKET_NAME)


class ServedEventLog:
    """The owned embedded log (used directly, in-process) plus its server; ``close`` stops both."""

    def __init__(self, log: EmbeddedEventLog, server: EventLogServer) -> None:
        self.log = log
        self.server = server

    @property
    def produce_target(self) -> EmbeddedEventLog:
        """The log whose ``produce_into`` this one forwards to (called directly per request)."""
        return self.log

    async def produce(
        self,
        topic: str,
        records: Sequence[ProduceRecord],
        *,
        partition: int | None = None,
        acks: Acks = "all",
        timeout: float = 30.0,
    ) -> list[RecordMetadata]:
        return await self.log.produce(
            topic, records, partition=partition, acks=acks, timeout=timeout
        )

    def produce_into(
        self,
        future: asyncio.Future[list[RecordMetadata]],
        topic: str,
        records: Sequence[ProduceRecord],
        *,
        partition: int | None = None,
        acks: Acks = "all",
    ) -> bool:
        return self.log.produce_into(future, topic, records, partition=partition, acks=acks)

    async def fetch(
        self,
        topic: str,
        partition: int,
        offset: int,
        *,
        max_records: int = 500,
        max_bytes: int = 1024 * 1024,
        max_wait: float = 0.0,
    ) -> FetchResult:
        return await self.log.fetch(
            topic,
            partition,
            offset,
            max_records=max_records,
            max_bytes=max_bytes,
            max_wait=max_wait,
        )

    async def offsets_for_time(self, topic: str, partition: int, timestamp_ms: int) -> int:
        return await self.log.offsets_for_time(topic, partition, timestamp_ms)

    async def earliest(self, topic: str, partition: int) -> int:
        return await self.log.earliest(topic, partition)

    async def latest(self, topic: str, partition: int) -> int:
        return await self.log.latest(topic, partition)

    async def commit(self, group: str, offsets: Mapping[tuple[str, int], int]) -> None:
        await self.log.commit(group, offsets)

    async def committed(self, group: str, topic: str) -> dict[int, int]:
        return await self.log.committed(group, topic)

    async def create_topic(
        self, name: str, partitions: int = 1, config: Mapping[str, str] | None = None
    ) -> TopicInfo:
        return await self.log.create_topic(name, partitions, config)

    async def describe_topic(self, name: str) -> TopicInfo:
        return await self.log.describe_topic(name)

    async def list_topics(self) -> list[str]:
        return await self.log.list_topics()

    async def delete_topic(self, name: str) -> None:
        await self.log.delete_topic(name)

    async def join_group(
        self, group: str, topics: Sequence[str], *, auto_offset_reset: OffsetReset = "earliest"
    ) -> GroupMember:
        return await self.log.join_group(group, topics, auto_offset_reset=auto_offset_reset)

    async def close(self) -> None:
        try:
            await self.server.close()
        finally:
            await self.log.close()


async def serve_embedded_log(
    root: str | Path, socket_path: str | Path, **options: Any
) -> ServedEventLog:
    """Open (lock) the embedded log at ``root`` and serve it at ``socket_path``.

    ``options`` go to ``EmbeddedEventLog.open``. Raises ``LogLocked`` if another process owns it.
    """
    log = await EmbeddedEventLog.open(root, **options)
    server = EventLogServer(log, str(socket_path))
    try:
        await server.start()
    except BaseException:
        await log.close()
        raise
    return ServedEventLog(log, server)


async def open_shared_event_log(
    root: str | Path, socket_path: str | Path | None = None, **options: Any
) -> EventLog:
    """Own and serve the log at ``root`` if its lock is free, else connect to its server.

    ``socket_path`` defaults to ``event_socket_path()``. A client created here retries
    connecting for a while, covering the moment the owner has the lock but no socket yet.
    """
    path = str(socket_path) if socket_path is not None else event_socket_path()
    try:
        return await serve_embedded_log(root, path, **options)
    except LogLocked:
        return RemoteEventLog(path)
