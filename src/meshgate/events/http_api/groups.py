"""Consumer-group reads over HTTP: one group member per (group, topic) per node.

HTTP requests naming the same group on one node share that node's member (serialised: one
poll at a time); members on different nodes split the partitions through the log's
``join_group``, so in steady state no record goes to two nodes. ``commit_strategy: auto``
commits after each poll (at-most-once for a response the client never got; ``off`` leaves
commits to the client: ``POST`` is not offered, so ``off`` means replays from the last
committed position after a rebalance). A member nobody polled for ``idle_seconds`` leaves the
group so the others take its partitions.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from meshgate.events.api import ConsumedRecord, EventLog, GroupMember, OffsetReset
from meshgate.events.errors import EventLogError
from meshgate.events.http_api.problems import problem_for
from meshgate.tasks import spawn

_log = logging.getLogger("meshgate.events.http")


@dataclass
class _Shared:
    member: GroupMember
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    last_used: float = 0.0


class GroupReaders:
    """Node-wide registry of group members for one log."""

    def __init__(self, log: EventLog, idle_seconds: float = 30.0) -> None:
        self.log = log
        self.idle_seconds = idle_seconds
        self._members: dict[tuple[str, str], _Shared] = {}
        self._joining: dict[tuple[str, str], asyncio.Future[_Shared]] = {}
        self._reaper: asyncio.Task[None] | None = None

    async def _member(self, group: str, topic: str, reset: OffsetReset) -> _Shared:
        key = (group, topic)
        shared = self._members.get(key)
        if shared is not None:
            return shared
        joining = self._joining.get(key)
        if joining is not None:
            return await asyncio.shield(joining)
        future: asyncio.Future[_Shared] = asyncio.get_running_loop().create_future()
        self._joining[key] = future
        try:
            member = await self.log.join_group(group, [topic], auto_offset_reset=reset)
            shared = self._members[key] = _Shared(
                member, last_used=asyncio.get_running_loop().time()
            )
            future.set_result(shared)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()
            raise
        finally:
            del self._joining[key]
        if self._reaper is None or self._reaper.done():
            self._reaper = spawn(self._reap(), name="events group reaper")
        return shared

    async def poll(
        self,
        group: str,
        topic: str,
        *,
        reset: OffsetReset,
        max_records: int,
        max_wait: float,
        commit: bool,
    ) -> list[ConsumedRecord]:
        try:
            shared = await self._member(group, topic, reset)
            async with shared.lock:
                shared.last_used = asyncio.get_running_loop().time()
                records = await shared.member.poll(max_records, max_wait)
                if commit and records:
                    await shared.member.commit()
                shared.last_used = asyncio.get_running_loop().time()
                return records
        except EventLogError as exc:
            raise problem_for(exc) from exc

    async def _reap(self) -> None:
        loop = asyncio.get_running_loop()
        while self._members:
            await asyncio.sleep(min(5.0, self.idle_seconds))
            now = loop.time()
            for key, shared in list(self._members.items()):
                if not shared.lock.locked() and now - shared.last_used > self.idle_seconds:
                    del self._members[key]
                    try:
                        await shared.member.leave()
                    except EventLogError as exc:
                        _log.info("leaving group %s: %s", key[0], exc)

    async def close(self) -> None:
        for shared in self._members.values():
            await shared.member.leave()
        self._members.clear()


class GroupSource:
    """A ``streams.Source`` over a group: reads through the node's shared member (no cursor)."""

    cursor = None

    def __init__(
        self, readers: GroupReaders, group: str, topic: str, *, reset: OffsetReset, commit: bool
    ) -> None:
        self.readers = readers
        self.group = group
        self.topic = topic
        self.reset: OffsetReset = reset
        self.commit = commit

    async def read(self, max_records: int, max_wait: float) -> list[ConsumedRecord]:
        return await self.readers.poll(
            self.group, self.topic, reset=self.reset, max_records=max_records,
            max_wait=max_wait, commit=self.commit,
        )  # fmt: skip
