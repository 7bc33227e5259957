"""``EventLogServer``: serves one process's ``EventLog`` to other processes over a unix socket.

Each connection carries requests ``{"id", "op", "args"}`` answered by ``{"id", "result"}`` or
``{"id", "error"}`` (``wire.error_out``). Every request runs as its own task, so a long-polling
fetch never holds up a produce on the same connection; ``{"id", "op": "cancel"}`` cancels the
request with that id (the client sends it when its call is cancelled). Consumer-group members
live on the connection that joined them and leave when it closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

from meshgate.events import errors
from meshgate.events.api import EventLog, GroupMember
from meshgate.events.bridge import wire
from meshgate.events.bridge.codec import FrameDecoder, FrameError, Message, encode_frame
from meshgate.tasks import spawn

_log = logging.getLogger("meshgate.events.bridge")
_READ_CHUNK = 256 * 1024

Handler = Callable[["_Connection", dict[str, Any]], Awaitable[Any]]


class EventLogServer:
    """Serves ``log`` at the unix socket ``path``; ``start`` binds, ``close`` stops (not the log)."""

    def __init__(self, log: EventLog, path: str) -> None:
        self.log = log
        self.path = path
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._connection_ids = itertools.count(1)

    async def start(self) -> None:
        """Bind the socket (replacing a stale socket file left by a crashed owner)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        self._server = await asyncio.start_unix_server(self._serve, path=self.path)

    async def close(self) -> None:
        """Stop accepting, drop every connection (their members leave), remove the socket."""
        if self._server is not None:
            self._server.close()
        for connection in list(self._connections):
            await connection.close()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    async def __aenter__(self) -> EventLogServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = _Connection(self.log, writer, next(self._connection_ids))
        self._connections.add(connection)
        decoder = FrameDecoder()
        try:
            while data := await reader.read(_READ_CHUNK):
                for message in decoder.feed(data):
                    connection.dispatch(message)
        except FrameError as exc:
            _log.warning("event-log bridge: dropping a client that sent a bad frame: %s", exc)
        except ConnectionError:
            pass
        finally:
            self._connections.discard(connection)
            await connection.close()


class _Connection:
    """One client connection: its in-flight requests and its group members."""

    def __init__(self, log: EventLog, writer: asyncio.StreamWriter, number: int) -> None:
        self.log = log
        self.writer = writer
        self.number = number
        self.members: dict[int, GroupMember] = {}
        self._member_ids = itertools.count(1)
        self._requests: dict[Any, asyncio.Task[None]] = {}
        self._closed = False

    def dispatch(self, message: Message) -> None:
        request_id = message.get("id")
        op = message.get("op")
        if op == "cancel":
            running = self._requests.get(request_id)
            if running is not None:
                running.cancel()
            return
        handler = _HANDLERS.get(str(op))
        args = message.get("args")
        if handler is None or not isinstance(args, dict):
            self._send(
                {
                    "id": request_id,
                    "error": wire.error_out(
                        errors.EventLogError(f"unknown bridge operation {op!r}")
                    ),
                }
            )
            return
        task = spawn(self._run(request_id, handler, args), name=f"eventlog-bridge-{op}")
        self._requests[request_id] = task

    async def _run(self, request_id: Any, handler: Handler, args: dict[str, Any]) -> None:
        try:
            result = await handler(self, args)
        except asyncio.CancelledError:
            return
        except Exception as exc:  # every failure goes back to the caller, typed
            self._send({"id": request_id, "error": wire.error_out(exc)})
        else:
            self._send({"id": request_id, "result": result})
        finally:
            self._requests.pop(request_id, None)

    def _send(self, message: Message) -> None:
        if not self._closed and not self.writer.is_closing():
            self.writer.write(encode_frame(message))

    def add_member(self, member: GroupMember) -> int:
        member_id = next(self._member_ids)
        self.members[member_id] = member
        return member_id

    def member(self, member_id: int) -> GroupMember:
        found = self.members.get(member_id)
        if found is None:
            raise errors.EventLogError(f"no group member {member_id} on this connection")
        return found

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for task in list(self._requests.values()):
            task.cancel()
        for member in list(self.members.values()):
            with contextlib.suppress(Exception):
                await member.leave()
        self.members.clear()
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


# -- operations ---------------------------------------------------------------------------


async def _produce(c: _Connection, a: dict[str, Any]) -> Any:
    placed = await c.log.produce(
        a["topic"],
        [wire.produce_record_in(r) for r in a["records"]],
        partition=a.get("partition"),
        acks=a.get("acks", "all"),
        timeout=a.get("timeout", 30.0),
    )
    return [wire.metadata_out(m) for m in placed]


async def _fetch(c: _Connection, a: dict[str, Any]) -> Any:
    result = await c.log.fetch(
        a["topic"],
        a["partition"],
        a["offset"],
        max_records=a.get("max_records", 500),
        max_bytes=a.get("max_bytes", 1024 * 1024),
        max_wait=a.get("max_wait", 0.0),
    )
    return wire.fetch_result_out(result)


async def _offsets_for_time(c: _Connection, a: dict[str, Any]) -> Any:
    return await c.log.offsets_for_time(a["topic"], a["partition"], a["timestamp_ms"])


async def _earliest(c: _Connection, a: dict[str, Any]) -> Any:
    return await c.log.earliest(a["topic"], a["partition"])


async def _latest(c: _Connection, a: dict[str, Any]) -> Any:
    return await c.log.latest(a["topic"], a["partition"])


async def _commit(c: _Connection, a: dict[str, Any]) -> Any:
    await c.log.commit(a["group"], wire.offsets_in(a["offsets"]))


async def _committed(c: _Connection, a: dict[str, Any]) -> Any:
    return sorted((await c.log.committed(a["group"], a["topic"])).items())


async def _create_topic(c: _Connection, a: dict[str, Any]) -> Any:
    info = await c.log.create_topic(a["name"], a.get("partitions", 1), a.get("config"))
    return wire.topic_info_out(info)


async def _describe_topic(c: _Connection, a: dict[str, Any]) -> Any:
    return wire.topic_info_out(await c.log.describe_topic(a["name"]))


async def _list_topics(c: _Connection, a: dict[str, Any]) -> Any:
    return await c.log.list_topics()


async def _delete_topic(c: _Connection, a: dict[str, Any]) -> Any:
    await c.log.delete_topic(a["name"])


async def _join(c: _Connection, a: dict[str, Any]) -> Any:
    member = await c.log.join_group(
        a["group"], a["topics"], auto_offset_reset=a.get("auto_offset_reset", "earliest")
    )
    return {"member": c.add_member(member), "assignment": member.assignment()}


async def _poll(c: _Connection, a: dict[str, Any]) -> Any:
    member = c.member(a["member"])
    records = await member.poll(a.get("max_records", 500), a.get("max_wait", 1.0))
    return {
        "records": [wire.consumed_out(r) for r in records],
        "assignment": member.assignment(),
    }


async def _member_commit(c: _Connection, a: dict[str, Any]) -> Any:
    member = c.member(a["member"])
    await member.commit()
    return {"assignment": member.assignment()}


async def _leave(c: _Connection, a: dict[str, Any]) -> Any:
    member = c.members.pop(a["member"], None)
    if member is not None:
        await member.leave()


_HANDLERS: dict[str, Handler] = {
    "produce": _produce,
    "fetch": _fetch,
    "offsets_for_time": _offsets_for_time,
    "earliest": _earliest,
    "latest": _latest,
    "commit": _commit,
    "committed": _committed,
    "create_topic": _create_topic,
    "describe_topic": _describe_topic,
    "list_topics": _list_topics,
    "delete_topic": _delete_topic,
    "join_group": _join,
    "poll": _poll,
    "member_commit": _member_commit,
    "leave": _leave,
}
