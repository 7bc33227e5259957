"""Group commit for the embedded log: many concurrent produces, one fsync per partition per round.

``enqueue`` queues records for a partition and returns a future. A single flush task runs
rounds: each round takes everything queued so far, appends it on the writer thread, fsyncs every
touched partition once, then resolves the futures and wakes long-polling readers. Produces that
arrive during a round wait for the next one, so under load each fsync covers many produces.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field

from meshgate.events.embedded.partition import PartitionLog, PendingRecord
from meshgate.events.errors import EventLogError
from meshgate.tasks import spawn

Placed = list[tuple[int, int]]


@dataclass(slots=True)
class _Append:
    log: PartitionLog
    records: list[PendingRecord]
    future: asyncio.Future[Placed] = field(repr=False)


class GroupCommitter:
    """Queues appends and flushes them in rounds on ``writer`` (a one-thread executor)."""

    def __init__(self, writer: Executor, on_durable: Callable[[PartitionLog], None]) -> None:
        self._loop = asyncio.get_running_loop()
        self._writer = writer
        self._on_durable = on_durable
        self._pending: list[_Append] = []
        self._idle: asyncio.Future[None] | None = None

    def enqueue(self, log: PartitionLog, records: list[PendingRecord]) -> asyncio.Future[Placed]:
        """Future of each record's ``(offset, timestamp_ms)``, set once they are fsynced."""
        future: asyncio.Future[Placed] = self._loop.create_future()
        future.add_done_callback(_mark_retrieved)
        self._pending.append(_Append(log, records, future))
        if self._idle is None:
            self._idle = self._loop.create_future()
            spawn(self._flush_rounds(), name="eventlog-flush")
        return future

    async def drain(self) -> None:
        """Wait until everything queued so far has been flushed (or failed)."""
        while self._idle is not None:
            await asyncio.shield(self._idle)

    async def _flush_rounds(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    outcomes = await self._loop.run_in_executor(self._writer, _write_round, batch)
                except RuntimeError as exc:  # the executor is shut down
                    outcomes = [EventLogError(f"event log closed: {exc}")] * len(batch)
                for append, outcome in zip(batch, outcomes, strict=True):
                    if append.future.done():
                        continue
                    if isinstance(outcome, BaseException):
                        append.future.set_exception(outcome)
                    else:
                        append.future.set_result(outcome)
                for log in {id(a.log): a.log for a in batch}.values():
                    self._on_durable(log)
        finally:
            idle, self._idle = self._idle, None
            if idle is not None:
                idle.set_result(None)


def _write_round(batch: list[_Append]) -> list[Placed | BaseException]:
    """On the writer thread: append every queued batch, then one fsync per partition."""
    outcomes: list[Placed | BaseException] = []
    for append in batch:
        try:
            outcomes.append(append.log.append(append.records))
        except (EventLogError, OSError, ValueError) as exc:
            outcomes.append(exc)
    failed_sync: dict[int, BaseException] = {}
    for log in {id(a.log): a.log for a in batch}.values():
        try:
            log.sync()
        except (EventLogError, OSError, ValueError) as exc:
            failed_sync[id(log)] = exc
    return [failed_sync.get(id(a.log), o) for a, o in zip(batch, outcomes, strict=True)]


def _mark_retrieved(future: asyncio.Future[Placed]) -> None:
    # acks="none" callers never await: keep asyncio from reporting the error as lost
    if not future.cancelled():
        future.exception()
