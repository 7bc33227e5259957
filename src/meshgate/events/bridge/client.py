"""``RemoteEventLog``: the ``EventLog`` of another process, reached through its ``EventLogServer``.

One unix-socket connection carries every call, each under its own request id, so calls run
concurrently (a long-polling fetch does not hold up a produce). The connection is opened on the
first call and again on the first call after it broke: calls in flight when it breaks fail with
``BrokerUnavailable`` (a produce then means "not known to be stored", as everywhere), later
calls reconnect, retrying for ``connect_timeout`` seconds while the server (re)starts. Errors
come back as the same ``events.errors`` classes, with their fields.

Group members live on the server connection that joined them. After a reconnect a member joins
again on its next ``poll`` and restarts from the group's committed offsets, so records polled
but not committed before the break are delivered again (at-least-once, as after a rebalance).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from meshgate.events.api import (
    Acks,
    ConsumedRecord,
    FetchResult,
    GroupMember,
    OffsetReset,
    ProduceRecord,
    RecordMetadata,
    TopicInfo,
)
from meshgate.events.bridge import wire
from meshgate.events.bridge.codec import FrameDecoder, FrameError, Message, encode_frame
from meshgate.events.errors import BrokerUnavailable
from meshgate.tasks import spawn

_READ_CHUNK = 256 * 1024
_RECONNECT_PAUSE = 0.05
_RETRY_AFTER = 0.5


class _Link:
    """One open connection and the calls waiting on it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.pending: dict[int, asyncio.Future[Message]] = {}
        self.alive = True
        self.reading = spawn(self._read_loop(), name="eventlog-bridge-client-reader")

    async def _read_loop(self) -> None:
        decoder = FrameDecoder()
        reason = "the event log server closed the connection"
        try:
            while data := await self.reader.read(_READ_CHUNK):
                for message in decoder.feed(data):
                    waiting = self.pending.pop(message.get("id", -1), None)
                    if waiting is not None and not waiting.done():
                        waiting.set_result(message)
        except (ConnectionError, FrameError) as exc:
            reason = f"lost the connection to the event log server: {exc}"
        finally:
            self.fail(reason)

    def fail(self, reason: str) -> None:
        self.alive = False
        for waiting in self.pending.values():
            if not waiting.done():
                waiting.set_exception(BrokerUnavailable(reason, retry_after=_RETRY_AFTER))
        self.pending.clear()
        self.writer.close()

    async def call(self, request_id: int, op: str, args: dict[str, Any]) -> Any:
        if not self.alive:
            raise BrokerUnavailable("the event log connection is down", retry_after=_RETRY_AFTER)
        answer: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self.pending[request_id] = answer
        try:
            self.writer.write(encode_frame({"id": request_id, "op": op, "args": args}))
            await self.writer.drain()
            message = await answer
        except asyncio.CancelledError:
            if self.alive and self.pending.pop(request_id, None) is not None:
                self.writer.write(encode_frame({"id": request_id, "op": "cancel"}))
            raise
        except ConnectionError as exc:
            self.fail(f"lost the connection to the event log server: {exc}")
            raise BrokerUnavailable(str(exc), retry_after=_RETRY_AFTER) from None
        finally:
            self.pending.pop(request_id, None)
        if "error" in message:
            raise wire.error_in(message["error"])
        return message.get("result")

    async def close(self) -> None:
        self.fail("the event log client was closed")
        self.reading.cancel()
        with contextlib.suppress(BaseException):
            await self.reading
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


class RemoteEventLog:
    """An ``EventLog`` served by an ``EventLogServer`` at the unix socket ``path``."""

    def __init__(self, path: str | Path, *, connect_timeout: float = 2.0) -> None:
        self.path = str(path)
        self.connect_timeout = connect_timeout
        self._link: _Link | None = None
        self._connecting = asyncio.Lock()
        self._request_ids = itertools.count(1)
        self._closed = False

    async def link(self) -> _Link:
        """The open connection, (re)connecting first if there is none."""
        if self._link is not None and self._link.alive:
            return self._link
        async with self._connecting:
            if self._link is not None and self._link.alive:
                return self._link
            if self._closed:
                raise BrokerUnavailable("the event log client is closed", retry_after=_RETRY_AFTER)
            deadline = time.monotonic() + self.connect_timeout
            while True:
                try:
                    reader, writer = await asyncio.open_unix_connection(self.path)
                    break
                except OSError as exc:
                    if time.monotonic() >= deadline:
                        raise BrokerUnavailable(
                            f"event log server at {self.path} is unreachable: {exc}",
                            retry_after=_RETRY_AFTER,
                        ) from None
                    await asyncio.sleep(_RECONNECT_PAUSE)
            self._link = _Link(reader, writer)
            return self._link

    async def call_on(self, link: _Link, op: str, args: dict[str, Any]) -> Any:
        return await link.call(next(self._request_ids), op, args)

    async def _call(self, op: str, args: dict[str, Any]) -> Any:
        return await self.call_on(await self.link(), op, args)

    async def produce(
        self,
        topic: str,
        records: Sequence[ProduceRecord],
        *,
        partition: int | None = None,
        acks: Acks = "all",
        timeout: float = 30.0,
    ) -> list[RecordMetadata]:
        placed = await self._call(
            "produce",
            {
                "topic": topic,
                "records": [wire.produce_record_out(r) for r in records],
                "partition": partition,
                "acks": acks,
                "timeout": timeout,
            },
        )
        return [wire.metadata_in(m) for m in placed]

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
        args = {
            "topic": topic,
            "partition": partition,
            "offset": offset,
            "max_records": max_records,
            "max_bytes": max_bytes,
            "max_wait": max_wait,
        }
        return wire.fetch_result_in(await self._call("fetch", args))

    async def offsets_for_time(self, topic: str, partition: int, timestamp_ms: int) -> int:
        args = {"topic": topic, "partition": partition, "timestamp_ms": timestamp_ms}
        return int(await self._call("offsets_for_time", args))

    async def earliest(self, topic: str, partition: int) -> int:
        return int(await self._call("earliest", {"topic": topic, "partition": partition}))

    async def latest(self, topic: str, partition: int) -> int:
        return int(await self._call("latest", {"topic": topic, "partition": partition}))

    async def commit(self, group: str, offsets: Mapping[tuple[str, int], int]) -> None:
        await self._call("commit", {"group": group, "offsets": wire.offsets_out(dict(offsets))})

    async def committed(self, group: str, topic: str) -> dict[int, int]:
        pairs = await self._call("committed", {"group": group, "topic": topic})
        return {int(partition): int(offset) for partition, offset in pairs}

    async def create_topic(
        self, name: str, partitions: int = 1, config: Mapping[str, str] | None = None
    ) -> TopicInfo:
        args = {"name": name, "partitions": partitions, "config": dict(config or {})}
        return wire.topic_info_in(await self._call("create_topic", args))

    async def describe_topic(self, name: str) -> TopicInfo:
        return wire.topic_info_in(await self._call("describe_topic", {"name": name}))

    async def list_topics(self) -> list[str]:
        return [str(name) for name in await self._call("list_topics", {})]

    async def delete_topic(self, name: str) -> None:
        await self._call("delete_topic", {"name": name})

    async def join_group(
        self, group: str, topics: Sequence[str], *, auto_offset_reset: OffsetReset = "earliest"
    ) -> GroupMember:
        member = RemoteGroupMember(self, group, list(topics), auto_offset_reset)
        await member.join(await self.link())
        return member

    async def close(self) -> None:
        self._closed = True
        if self._link is not None:
            await self._link.close()
            self._link = None


class RemoteGroupMember:
    """A ``GroupMember`` living in the server process; see the module docstring on reconnects."""

    def __init__(
        self, log: RemoteEventLog, group: str, topics: list[str], reset: OffsetReset
    ) -> None:
        self._log = log
        self._group = group
        self._topics = topics
        self._reset = reset
        self._joined_on: _Link | None = None
        self._member_id = 0
        self._assigned: list[tuple[str, int]] = []
        self._left = False

    @property
    def group(self) -> str:
        return self._group

    def assignment(self) -> list[tuple[str, int]]:
        return list(self._assigned)

    def _take_assignment(self, wire_assignment: list[list[Any]]) -> None:
        self._assigned = [(str(topic), int(partition)) for topic, partition in wire_assignment]

    async def join(self, link: _Link) -> None:
        args = {"group": self._group, "topics": self._topics, "auto_offset_reset": self._reset}
        joined = await self._log.call_on(link, "join_group", args)
        self._joined_on = link
        self._member_id = int(joined["member"])
        self._take_assignment(joined["assignment"])

    async def poll(self, max_records: int = 500, max_wait: float = 1.0) -> list[ConsumedRecord]:
        if self._left:
            return []
        link = await self._log.link()
        if link is not self._joined_on:
            self._assigned = []
            await self.join(link)
        args = {"member": self._member_id, "max_records": max_records, "max_wait": max_wait}
        polled = await self._log.call_on(link, "poll", args)
        self._take_assignment(polled["assignment"])
        return [wire.consumed_in(r) for r in polled["records"]]

    async def commit(self) -> None:
        link = self._joined_on
        if link is None or not link.alive:
            raise BrokerUnavailable(
                "the group membership was lost with the connection; uncommitted records will be "
                "delivered again",
                retry_after=_RETRY_AFTER,
            )
        committed = await self._log.call_on(link, "member_commit", {"member": self._member_id})
        self._take_assignment(committed["assignment"])

    async def leave(self) -> None:
        self._left = True
        self._assigned = []
        link, self._joined_on = self._joined_on, None
        if link is not None and link.alive:
            await self._log.call_on(link, "leave", {"member": self._member_id})
