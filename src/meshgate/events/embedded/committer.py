"""Group commit for the embedded log: many concurrent produces, one fsync per partition per round.

``enqueue`` hands records for a partition, with the future to resolve, to the log's
``SerialWriter``. Its thread runs rounds back to back: a round takes every append queued so
far, appends it (one write per touched partition) and fsyncs each touched partition once, then
passes the outcomes to the loop (which resolves the round's futures in one pass and wakes
long-polling readers) and at once starts the next round on what was queued meanwhile. A round
starts when the first append arrives, not at the loop's next turn, and the next does not wait
for the loop either: the fsyncs run while the loop reads requests. Under load each fsync covers
many produces. A future already done when its round ends (the caller stopped waiting) is left
alone; its records are stored all the same.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from meshgate.events.api import RecordMetadata
from meshgate.events.embedded.partition import PartitionLog, PendingRecord
from meshgate.events.embedded.writer import SerialWriter
from meshgate.events.errors import EventLogError

Placed = list[RecordMetadata]
Outcomes = list["Placed | BaseException"]


@dataclass(slots=True)
class _Append:
    log: PartitionLog
    records: list[PendingRecord]
    future: asyncio.Future[Placed] = field(repr=False)


class GroupCommitter:
    """Queues appends on ``writer`` and settles their futures as its rounds end."""

    def __init__(self, writer: SerialWriter, on_durable: Callable[[PartitionLog], None]) -> None:
        self._loop = asyncio.get_running_loop()
        self._writer = writer
        writer.commit = self._commit
        self._on_durable = on_durable
        self._queued = 0  # appends handed to the writer and not settled yet
        self._idle: asyncio.Future[None] | None = None  # set while appends are queued

    def enqueue(
        self, log: PartitionLog, records: list[PendingRecord], future: asyncio.Future[Placed]
    ) -> None:
        """Queue ``records``; ``future`` gets their metadata once they are fsynced, or the
        error. Nobody awaiting it (``acks="none"``)? Mark it with ``unwatched``."""
        try:
            self._writer.append(_Append(log, records, future))
        except RuntimeError as exc:  # the writer is shut down
            future.set_exception(EventLogError(f"event log closed: {exc}"))
            return
        self._queued += 1
        if self._idle is None:
            self._idle = self._loop.create_future()

    async def drain(self) -> None:
        """Wait until everything queued so far has been flushed (or failed)."""
        while self._idle is not None:
            await asyncio.shield(self._idle)

    def _commit(self, batch: list[_Append]) -> None:
        """On the writer thread: one round, its outcomes handed to the loop."""
        outcomes: Outcomes
        try:
            outcomes = _write_round(batch)
        except Exception as exc:  # a bug: fail the round's produces, keep the writer alive
            outcomes = [EventLogError(f"write round failed: {exc!r}")] * len(batch)
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
            self._queued -= len(batch)
            if not self._queued:
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
