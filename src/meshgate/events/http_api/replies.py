"""Request/reply over the log: wait for the record on a reply topic that carries our
correlation id.

``ReplyRouter`` (one per log and reply topic per node) tails the reply topic from where it
stood when the router started, hands each record with a known correlation id to its waiter,
and keeps unclaimed replies for ``keep_seconds`` (bounded) for clients that poll later.
``register`` must be called before the request is produced, so a fast reply is not missed.

Polling from any node: the poll token is ``<correlation id>.<cursor of the reply topic when
the request was produced>``; a node that has not seen the reply scans the reply topic from
that cursor (``scan``, bounded), so the poll needs no shared state.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict

from meshgate.events.api import ConsumedRecord, EventLog
from meshgate.events.http_api.consume import Reader, StartSpec, resolve
from meshgate.events.http_api.cursor import Cursor
from meshgate.events.http_api.problems import HttpProblem
from meshgate.events.http_api.watch import Watchers
from meshgate.tasks import spawn

_log = logging.getLogger("meshgate.events.http")


def header_value(record: ConsumedRecord, name: str) -> bytes | None:
    for header, value in record.headers:
        if header.lower() == name:
            return value
    return None


class ReplyRouter:
    def __init__(
        self,
        log: EventLog,
        topic: str,
        correlation_header: str,
        *,
        keep_seconds: float = 300.0,
        max_kept: int = 10_000,
    ) -> None:
        self.log = log
        self.topic = topic
        self.correlation_header = correlation_header.lower()
        self.keep_seconds = keep_seconds
        self.max_kept = max_kept
        self._waiters: dict[str, asyncio.Future[ConsumedRecord]] = {}
        self._kept: OrderedDict[str, tuple[float, ConsumedRecord]] = OrderedDict()
        self._reader: Reader | None = None
        self._watchers = Watchers(log)
        self._task: asyncio.Task[None] | None = None
        self._start_lock = asyncio.Lock()

    async def start(self) -> None:
        """Start tailing (once; again if the tail task ended)."""
        if self._task is not None and not self._task.done():
            return
        async with self._start_lock:
            if self._task is None or self._task.done():
                cursor = await resolve(self.log, self.topic, StartSpec("latest"))
                self._reader = Reader(self.log, cursor, self._watchers)
                self._task = spawn(self._run(self._reader), name=f"events replies {self.topic}")

    async def position(self) -> Cursor:
        """The reply topic's end now: a poll token's scan starts here."""
        return await resolve(self.log, self.topic, StartSpec("latest"))

    async def _run(self, reader: Reader) -> None:
        while True:
            try:
                records = await reader.read(500, max_wait=5.0)
            except HttpProblem as problem:
                _log.warning("reply topic %s: %s", self.topic, problem.message)
                await asyncio.sleep(1.0)
                continue
            for record in records:
                self._deliver(record)

    def _deliver(self, record: ConsumedRecord) -> None:
        raw = header_value(record, self.correlation_header)
        if raw is None:
            return
        cid = raw.decode("utf-8", "replace")
        waiter = self._waiters.pop(cid, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(record)
        self._kept[cid] = (time.monotonic(), record)
        self._kept.move_to_end(cid)
        oldest = time.monotonic() - self.keep_seconds
        while self._kept and (
            len(self._kept) > self.max_kept or next(iter(self._kept.values()))[0] < oldest
        ):
            self._kept.popitem(last=False)

    def register(self, cid: str) -> asyncio.Future[ConsumedRecord]:
        future: asyncio.Future[ConsumedRecord] = asyncio.get_running_loop().create_future()
        self._waiters[cid] = future
        return future

    def forget(self, cid: str) -> None:
        self._waiters.pop(cid, None)

    def kept(self, cid: str) -> ConsumedRecord | None:
        found = self._kept.get(cid)
        return found[1] if found is not None else None

    async def wait(self, cid: str, timeout: float) -> ConsumedRecord | None:
        found = self.kept(cid)
        if found is not None or timeout <= 0:
            return found
        future = self._waiters.get(cid) or self.register(cid)
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            return None

    async def scan(
        self, cid: str, cursor: Cursor, max_records: int = 10_000
    ) -> ConsumedRecord | None:
        """Look for ``cid`` on the reply topic from ``cursor`` (a poll on another node)."""
        reader = Reader(self.log, cursor)
        seen = 0
        while seen < max_records:
            records = await reader.read(500)
            if not records:
                return None
            for record in records:
                value = header_value(record, self.correlation_header)
                if value is not None and value.decode("utf-8", "replace") == cid:
                    return record
            seen += len(records)
        return None

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        await self._watchers.close()
