"""Shared tail watchers: many waiting readers of a partition cost one long-poll per node.

A reader that found nothing at its position calls ``Watchers.wait(topic, partitions,
positions, timeout)``. Each (topic, partition) has at most one watcher task: it long-polls the
log at the partition's end and wakes every waiter when the end moves. A waiter whose position
is already below the known end returns at once, so a record appended between the reader's
empty fetch and its wait is never missed. Idle watchers (no waiter for ``idle_seconds``) stop.

``fetch`` is the log's (no wait) shared between concurrent identical calls: when a record wakes
thousands of readers at the same position, the log is read once and they all get that result.
Live tails are the usual case, so when the end moves the watcher itself reads the records past
the old end (with the readers' last fetch size) before waking anyone: readers at that position
then get the result without a wait, a task or a shared future each, and once served, skip
the read at the new end (``at_end``) and wait again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence

from meshgate.events.api import EventLog, FetchResult
from meshgate.events.errors import EventLogError
from meshgate.tasks import spawn

_log = logging.getLogger("meshgate.events.http")


class _Watcher:
    def __init__(self, log: EventLog, topic: str, partition: int, idle_seconds: float) -> None:
        self.log = log
        self.topic = topic
        self.partition = partition
        self.idle_seconds = idle_seconds
        self.end: int | None = None
        self.moved = asyncio.Event()
        self.ready = asyncio.Event()
        self.waiters = 0
        self.task: asyncio.Task[None] | None = None
        self.prefetch: Callable[[_Watcher, int], Awaitable[None]] | None = None

    def _signal(self) -> None:
        self.moved.set()
        self.moved = asyncio.Event()

    async def run(self, poll_wait: float) -> None:
        loop = asyncio.get_running_loop()
        idle_since = loop.time()
        while True:
            try:
                if self.end is None:
                    self.end = await self.log.latest(self.topic, self.partition)
                    self.ready.set()
                result = await self.log.fetch(
                    self.topic, self.partition, self.end, max_records=1, max_wait=poll_wait
                )
                end = max(result.high_watermark, *(r.offset + 1 for r in result.records), 0)
                if end != self.end:
                    previous, self.end = self.end, end
                    if self.prefetch is not None and self.waiters:
                        await self.prefetch(self, previous)
                    self._signal()
            except EventLogError as exc:
                _log.debug("watcher %s[%d]: %s", self.topic, self.partition, exc)
                self.end = None
                self._signal()  # let waiters retry (and see the error themselves)
                await asyncio.sleep(1.0)
            if self.waiters:
                idle_since = loop.time()
            elif loop.time() - idle_since > self.idle_seconds:
                return


async def _one(watcher: _Watcher, position: int) -> bool:
    if not watcher.ready.is_set():
        await watcher.ready.wait()
    while watcher.end is None or watcher.end <= position:
        await watcher.moved.wait()
    return True


class Watchers:
    """Node-wide registry of partition watchers for one log."""

    def __init__(
        self, log: EventLog, *, poll_wait: float = 5.0, idle_seconds: float = 30.0
    ) -> None:
        self.log = log
        self.poll_wait = poll_wait
        self.idle_seconds = idle_seconds
        self._watchers: dict[tuple[str, int], _Watcher] = {}
        self._fetches: dict[tuple[str, int, int, int, int], asyncio.Future[FetchResult]] = {}
        # per (topic, partition): the last fetch size asked for, and what the watcher read
        self._sizes: dict[tuple[str, int], tuple[int, int]] = {}
        self._ready: dict[tuple[str, int], tuple[tuple[str, int, int, int, int], FetchResult]] = {}

    def at_end(self, topic: str, partition: int, offset: int) -> bool:
        """``offset`` is the end a running watcher of the partition knows: nothing to read
        there until it wakes its waiters (a reader just served goes straight to ``wait``)."""
        watcher = self._watchers.get((topic, partition))
        return (
            watcher is not None
            and watcher.end == offset
            and watcher.task is not None
            and not watcher.task.done()
        )

    async def fetch(
        self, topic: str, partition: int, offset: int, max_records: int, max_bytes: int
    ) -> FetchResult:
        """``log.fetch(...)`` without wait; concurrent identical calls share one read (the
        result is shared: callers must not mutate it)."""
        key = (topic, partition, offset, max_records, max_bytes)
        ready = self._ready.get((topic, partition))
        if ready is not None and ready[0] == key:
            return ready[1]
        self._sizes[(topic, partition)] = (max_records, max_bytes)
        running = self._fetches.get(key)
        if running is None:
            running = asyncio.get_running_loop().create_future()
            self._fetches[key] = running
            spawn(self._fetch_into(running, key), name=f"events fetch {topic}[{partition}]")
        return await asyncio.shield(running)

    async def _fetch_into(
        self, result: asyncio.Future[FetchResult], key: tuple[str, int, int, int, int]
    ) -> None:
        topic, partition, offset, max_records, max_bytes = key
        try:
            fetched = await self.log.fetch(
                topic, partition, offset, max_records=max_records, max_bytes=max_bytes
            )
        except asyncio.CancelledError:
            result.cancel()
            raise
        except Exception as exc:  # handed to every caller, not lost in this task
            if not result.done():
                result.set_exception(exc)
                result.exception()  # retrieved: callers that left must not warn about it
        else:
            if not result.done():
                result.set_result(fetched)
        finally:
            if self._fetches.get(key) is result:
                del self._fetches[key]

    async def _prefetch(self, watcher: _Watcher, previous: int) -> None:
        """Read what was appended past ``previous`` for the readers about to wake there."""
        where = (watcher.topic, watcher.partition)
        self._ready.pop(where, None)
        size = self._sizes.get(where)
        if size is None:
            return
        key = (*where, previous, *size)
        try:
            fetched = await self.log.fetch(*where, previous, max_records=size[0], max_bytes=size[1])
        except EventLogError:
            return  # the readers fetch (and report) it themselves
        if fetched.records:  # never an empty one: a reader would spin on it
            self._ready[where] = (key, fetched)

    def _watcher(self, topic: str, partition: int) -> _Watcher:
        key = (topic, partition)
        watcher = self._watchers.get(key)
        if watcher is None or watcher.task is None or watcher.task.done():
            watcher = _Watcher(self.log, topic, partition, self.idle_seconds)
            watcher.prefetch = self._prefetch
            watcher.task = spawn(
                watcher.run(self.poll_wait), name=f"events watch {topic}[{partition}]"
            )
            self._watchers[key] = watcher
        return watcher

    async def wait(
        self,
        topic: str,
        partitions: Sequence[int],
        positions: Mapping[int, int],
        timeout: float,
    ) -> bool:
        """Until one partition has data past its position (True) or ``timeout`` (False)."""
        if timeout <= 0 or not partitions:
            return False
        watchers = [self._watcher(topic, p) for p in partitions]
        for w in watchers:
            w.waiters += 1
        try:
            async with asyncio.timeout(timeout):
                if len(watchers) == 1:  # the common case, without a future per wake
                    return await _one(watchers[0], positions.get(partitions[0], 0))
                await asyncio.gather(*(w.ready.wait() for w in watchers))
                while True:
                    for w, p in zip(watchers, partitions, strict=True):
                        if w.end is not None and w.end > positions.get(p, 0):
                            return True
                    events = [asyncio.ensure_future(w.moved.wait()) for w in watchers]
                    try:
                        await asyncio.wait(events, return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        for event in events:
                            event.cancel()
        except TimeoutError:
            return False
        finally:
            for w in watchers:
                w.waiters -= 1

    async def close(self) -> None:
        for running in self._fetches.values():
            running.cancel()
        self._fetches.clear()
        self._ready.clear()
        for watcher in self._watchers.values():
            if watcher.task is not None:
                watcher.task.cancel()
        self._watchers.clear()
