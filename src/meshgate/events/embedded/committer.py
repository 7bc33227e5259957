"""Group commit for the embedded log: many concurrent produces, one fsync per partition per round.

``enqueue`` queues records for a partition with the future to resolve. Rounds run one at a
time on the writer thread: a round takes everything queued so far, appends it (one write per
touched partition), fsyncs each touched partition once; back on the loop its futures are
resolved in one pass, readers woken, and the next round starts with what was queued
meanwhile. With no round running, an ``enqueue`` starts one at once, on the records queued so
far, rather than at the next turn of the loop: the fsync runs while the loop reads the other
requests that arrived together, instead of after them with the loop idle. Under load each
fsync covers many produces. A future already done when its round ends (the caller stopped
waiting) is left alone; its records are stored all the same.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field

from meshgate.events.api import RecordMetadata
from meshgate.events.embedded.partition import PartitionLog, PendingRecord
from meshgate.events.errors import EventLogError

Placed = list[RecordMetadata]
Outcomes = list["Placed | BaseException"]


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
        self._idle: asyncio.Future[None] | None = None  # set while a round runs

    def enqueue(
        self, log: PartitionLog, records: list[PendingRecord], future: asyncio.Future[Placed]
    ) -> None:
        """Queue ``records``; ``future`` gets their metadata once they are fsynced, or the
        error. Nobody awaiting it (``acks="none"``)? Mark it with ``unwatched``."""
        self._pending.append(_Append(log, records, future))
        if self._idle is None:
            self._idle = self._loop.create_future()
            self._start_round()

    async def drain(self) -> None:
        """Wait until everything queued so far has been flushed (or failed)."""
        while self._idle is not None:
            await asyncio.shield(self._idle)

    def _start_round(self) -> None:
        batch, self._pending = self._pending, []
        try:
            written = self._writer.submit(_write_round, batch)
        except RuntimeError as exc:  # the executor is shut down
            self._round_done(batch, [EventLogError(f"event log closed: {exc}")] * len(batch))
            return
        written.add_done_callback(lambda done: self._from_writer(batch, done))

    def _from_writer(self, batch: list[_Append], done: Future[Outcomes]) -> None:
        """On the writer thread: hand the round's outcomes to the loop."""
        outcomes: Outcomes
        if done.cancelled():
            outcomes = [EventLogError("event log closed")] * len(batch)
        elif (exc := done.exception()) is not None:
            outcomes = [exc] * len(batch)
        else:
            outcomes = done.result()
        try:
            self._loop.call_soon_threadsafe(self._round_done, batch, outcomes)
        except RuntimeError:
            pass  # the loop is closed; nobody is waiting any more

    def _round_done(self, batch: list[_Append], outcomes: Outcomes) -> None:
        try:
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
            if self._pending:
                self._start_round()
            else:
                idle, self._idle = self._idle, None
                if idle is not None:
                    idle.set_result(None)


def _write_round(batch: list[_Append]) -> Outcomes:
    """On the writer thread: append every queued batch (one write per partition), then one
    fsync per partition."""
    by_log: dict[int, list[int]] = {}
    for index, append in enumerate(batch):
        by_log.setdefault(id(append.log), []).append(index)
    outcomes: list[Placed | BaseException] = [EventLogError("not written")] * len(batch)
    failed_sync: dict[int, BaseException] = {}
    for indexes in by_log.values():
        log = batch[indexes[0]].log
        try:
            placed = log.append_batches([batch[i].records for i in indexes])
        except (EventLogError, OSError, ValueError) as exc:
            placed = [exc] * len(indexes)
        topic, number = log.topic, log.partition
        for index, one in zip(indexes, placed, strict=True):
            outcomes[index] = (
                one
                if isinstance(one, BaseException)
                else [RecordMetadata(topic, number, o, t) for o, t in one]
            )
        try:
            log.sync()
        except (EventLogError, OSError, ValueError) as exc:
            failed_sync[id(log)] = exc
    return [failed_sync.get(id(a.log), o) for a, o in zip(batch, outcomes, strict=True)]


def unwatched(future: asyncio.Future[Placed]) -> asyncio.Future[Placed]:
    """``future`` marked so that an error nobody awaits (``acks="none"``) is not reported lost."""
    future.add_done_callback(_mark_retrieved)
    return future


def _mark_retrieved(future: asyncio.Future[Placed]) -> None:
    if not future.cancelled():
        future.exception()
