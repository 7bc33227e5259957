"""Group commit for the embedded log: many concurrent produces, one fsync per partition per round.

``enqueue`` queues records for a partition with the future to resolve. A round takes every
append queued so far, appends it (one write per touched partition) and fsyncs each touched
partition once; then the round's futures are resolved in one pass, long-polling readers are woken
and the next round starts at once on what was queued meanwhile. Under load each fsync covers many
produces. A future already done when its round ends (the caller stopped waiting) is
left alone; its records are stored all the same.

Where a round runs:
* normally on the event loop, which writes (page cache, no roll) and hands the fsyncs to the
  log's fsync process (``syncer``); the loop carries on and settles the round when the process
  answers. One such round is in flight at a time: it starts at the produce when none is, else
  when the one in flight ends.
* on the log's writer thread (``SerialWriter``) when the process is not ready or was lost, or
  when a partition needs a new segment (a roll fsyncs the old one and the directory). Appends
  go to the thread as they come and it runs its rounds back to back, not waiting for the loop;
  outcomes come back with ``call_soon_threadsafe``. The loop starts no round of its own while
  the thread has appends, so a partition never has two writers.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from meshgate.events.api import RecordMetadata
from meshgate.events.embedded.partition import PartitionLog, PendingRecord
from meshgate.events.embedded.segment import Segment
from meshgate.events.embedded.syncer import FsyncProcess, SyncTarget
from meshgate.events.embedded.writer import SerialWriter
from meshgate.events.errors import BrokerUnavailable, EventLogError

Placed = list[RecordMetadata]
Outcomes = list["Placed | BaseException"]


@dataclass(slots=True)
class _Append:
    log: PartitionLog
    records: list[PendingRecord]
    future: asyncio.Future[Placed] = field(repr=False)


@dataclass(slots=True)
class _InPlace:
    """A partition's part of a round written by the loop, waiting for its fsync."""

    log: PartitionLog
    segment: Segment
    size: int
    next_offset: int
    indexes: list[int]


class GroupCommitter:
    """Runs the rounds (see the module docstring) and settles their futures."""

    def __init__(self, writer: SerialWriter, on_durable: Callable[[PartitionLog], None]) -> None:
        self._loop = asyncio.get_running_loop()
        self._writer = writer
        writer.commit = self._commit
        self._syncer: FsyncProcess | None = None  # ``attach``
        self._on_durable = on_durable
        self._pending: list[_Append] = []  # not yet in a round
        self._syncing = False  # a round written on the loop waits for the fsync process
        self._on_thread = 0  # appends handed to the writer thread and not settled yet
        self._idle: asyncio.Future[None] | None = None  # set while appends are not settled

    def attach(self, syncer: FsyncProcess | None) -> None:
        """Sync through ``syncer`` from now on (once it is ready)."""
        self._syncer = syncer

    def enqueue(
        self,
        log: PartitionLog,
        records: list[PendingRecord],
        future: asyncio.Future[Placed],
        *,
        start: bool = True,
    ) -> None:
        """Queue ``records``; ``future`` gets their metadata once they are fsynced, or the
        error. Nobody awaiting it (``acks="none"``)? Mark it with ``unwatched``. ``start=False``
        when more appends of the same produce follow at once (they join the same round)."""
        self._pending.append(_Append(log, records, future))
        if self._idle is None:
            self._idle = self._loop.create_future()
        if start and not self._syncing:
            self._pump()

    async def drain(self) -> None:
        """Wait until everything queued so far has been flushed (or failed)."""
        while self._idle is not None:
            await asyncio.shield(self._idle)

    def _pump(self) -> None:
        """Start what can start: a round on the loop when nothing else is in flight, else
        (no fsync process) hand the appends to the writer thread, which runs its rounds back to
        back without waiting for the loop."""
        if self._syncing or not self._pending:
            if not (self._syncing or self._on_thread or self._pending):
                idle, self._idle = self._idle, None
                if idle is not None:
                    idle.set_result(None)
            return
        syncer = self._syncer
        in_place = syncer is not None and syncer.usable
        if in_place and self._on_thread:
            return  # the thread's rounds end first: one writer per partition at a time
        batch, self._pending = self._pending, []
        if in_place and syncer is not None and self._round_in_place(batch, syncer):
            return
        for position, append in enumerate(batch):
            try:
                self._writer.append(append)
            except RuntimeError as exc:  # the writer is shut down
                refused = batch[position:]
                self._settle(refused, [EventLogError(f"event log closed: {exc}")] * len(refused))
                return
            self._on_thread += 1

    def _round_in_place(self, batch: list[_Append], syncer: FsyncProcess) -> bool:
        """Write ``batch`` on the loop and have the fsync process sync it; False (nothing
        written) when a partition needs the writer thread (a roll, a failed partition)."""
        by_log: dict[int, list[int]] = {}
        for index, append in enumerate(batch):
            by_log.setdefault(id(append.log), []).append(index)
        groups = [(batch[indexes[0]].log, indexes) for indexes in by_log.values()]
        if not all(log.fits_in_place([batch[i].records for i in ix]) for log, ix in groups):
            return False
        outcomes: Outcomes = [EventLogError("not written")] * len(batch)
        parts: list[_InPlace] = []
        for log, indexes in groups:
            try:
                placed, segment = log.append_in_place([batch[i].records for i in indexes])
            except EventLogError as exc:  # the write failed (and was cut back)
                for index in indexes:
                    outcomes[index] = exc
                continue
            _place(log, indexes, placed, outcomes)
            parts.append(_InPlace(log, segment, segment.size, segment.next_offset, indexes))
        targets: list[SyncTarget] = [(part.segment.fileno(), False) for part in parts]

        def synced(errnos: list[int] | None) -> None:
            self._synced(batch, outcomes, parts, errnos)

        if not parts:  # every write failed: nothing to sync
            self._settle(batch, outcomes)
            return True
        self._syncing = True
        if not syncer.sync(targets, synced):
            synced(None)  # lost between usable and now: the written records fail, unpublished
        return True

    def _synced(self, batch: list[_Append], outcomes: Outcomes, parts: list[_InPlace],
                errnos: list[int] | None) -> None:  # fmt: skip
        """The fsync process answered for a round written in place (None: it is gone)."""
        self._syncing = False
        for position, part in enumerate(parts):
            errno_ = None if errnos is None else errnos[position]
            if errno_ == 0:
                part.log.published(part.segment, part.size, part.next_offset)
                continue
            failure = (
                BrokerUnavailable("the event log's fsync process is gone; not acknowledged")
                if errno_ is None
                else part.log.sync_failed(part.segment, os.strerror(errno_))
            )
            for index in part.indexes:
                if not isinstance(outcomes[index], BaseException):
                    outcomes[index] = failure
        self._settle(batch, outcomes)

    def _commit(self, batch: list[_Append]) -> None:
        """On the writer thread: one round, its outcomes handed to the loop."""
        outcomes: Outcomes
        try:
            outcomes = _write_round(batch)
        except Exception as exc:  # a bug: fail the round's produces, keep the writer alive
            outcomes = [EventLogError(f"write round failed: {exc!r}")] * len(batch)
        try:
            self._loop.call_soon_threadsafe(self._thread_round_done, batch, outcomes)
        except RuntimeError:
            pass  # the loop is closed; nobody is waiting any more

    def _thread_round_done(self, batch: list[_Append], outcomes: Outcomes) -> None:
        self._on_thread -= len(batch)
        self._settle(batch, outcomes)

    def _settle(self, batch: list[_Append], outcomes: Outcomes) -> None:
        """On the loop: ``batch`` is done with; resolve its futures, start what waited."""
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
            self._pump()


def _place(log: PartitionLog, indexes: list[int], placed: list[list[tuple[int, int]] | BaseException],
           outcomes: Outcomes) -> None:  # fmt: skip
    topic, number = log.topic, log.partition
    for index, one in zip(indexes, placed, strict=True):
        outcomes[index] = (
            one
            if isinstance(one, BaseException)
            else [RecordMetadata(topic, number, o, t) for o, t in one]
        )


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
        _place(log, indexes, placed, outcomes)
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
