"""One topic-partition of the embedded log: a directory of segments, appended by one writer.

Durability rule: records are written by ``append`` and become visible (below the high
watermark) only after ``sync`` fsynced them. A segment is fsynced before the next one is
created, so only the last segment can have a torn tail; ``open`` truncates it to the last valid
frame. A torn or corrupt frame in an older segment is real corruption and refuses to open.

Threads: one writer at a time — the writer thread (``append``/``sync``/``enforce_retention``) or
the event loop (``append_in_place``, then ``published`` once the fsync process synced; never
while the thread has appends: see ``committer``) — and many readers (``read``,
``offset_at_time``); ``_lock`` guards the segment list and the published bounds.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from meshgate.events.api import ConsumedRecord
from meshgate.events.embedded.records import encode_frame, frame_size
from meshgate.events.embedded.segment import SUFFIX, Segment
from meshgate.events.errors import EventLogError, OffsetOutOfRange

_log = logging.getLogger("meshgate.events.embedded")

PendingRecord = tuple[bytes | None, bytes | None, Sequence[tuple[str, bytes]], int | None]


@dataclass(frozen=True, slots=True)
class PartitionSettings:
    """Per-topic knobs (Kafka config names in parentheses)."""

    segment_bytes: int = 64 * 1024 * 1024  # segment.bytes
    retention_bytes: int = -1  # retention.bytes, -1 = unlimited
    retention_ms: int = -1  # retention.ms, -1 = forever


_BAD_RECORD = (ValueError, TypeError, AttributeError, OverflowError, struct.error)


def _encode(
    records: Sequence[PendingRecord], first_offset: int, now_ms: int
) -> list[tuple[bytes, int]]:
    """Each record's frame and timestamp, offsets from ``first_offset``."""
    encoded = []
    for offset, (key, value, headers, timestamp_ms) in enumerate(records, first_offset):
        ts = now_ms if timestamp_ms is None else timestamp_ms
        encoded.append((encode_frame(offset, ts, key, value, headers), ts))
    return encoded


class CorruptLog(EventLogError):
    """A sealed segment fails its checksums: refuse to serve it rather than lose records."""


def fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class PartitionLog:
    """Segments of one partition; offsets are consecutive from the first segment's base."""

    def __init__(self, directory: Path, topic: str, partition: int, settings: PartitionSettings):
        self.directory = directory
        self.topic = topic
        self.partition = partition
        self.settings = settings
        self._lock = threading.Lock()
        self._segments: list[Segment] = []
        self._high_watermark = 0
        self._failed: str | None = None

    @classmethod
    def open(
        cls, directory: Path, topic: str, partition: int, settings: PartitionSettings
    ) -> PartitionLog:
        """Open (creating if needed) and recover the partition in ``directory``."""
        log = cls(directory, topic, partition, settings)
        directory.mkdir(parents=True, exist_ok=True)
        bases = sorted(int(p.name[: -len(SUFFIX)]) for p in directory.glob(f"*{SUFFIX}"))
        for position, base in enumerate(bases):
            segment = Segment.create(directory, base)
            log._segments.append(segment)
            if log._segments[:-1] and log._segments[-2].next_offset != base:
                raise CorruptLog(f"{directory}: segment {base} does not follow its predecessor")
            file_size = segment.load()
            if file_size == segment.size:
                continue
            if position != len(bases) - 1:
                raise CorruptLog(f"{segment.path}: invalid frame at byte {segment.size}")
            _log.warning(
                "%s: truncating %d bytes of torn tail at byte %d",
                segment.path,
                file_size - segment.size,
                segment.size,
            )
            segment.truncate_to_valid()
        if not log._segments:
            log._segments.append(Segment.create(directory, 0))
            fsync_directory(directory)
        log._high_watermark = log._segments[-1].next_offset
        return log

    @property
    def high_watermark(self) -> int:
        return self._high_watermark

    @property
    def log_start_offset(self) -> int:
        return self._segments[0].base_offset

    def append(self, records: Sequence[PendingRecord]) -> list[tuple[int, int]]:
        """Write records (not yet durable); returns each one's ``(offset, timestamp_ms)``."""
        (outcome,) = self.append_batches([records])
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def append_batches(
        self, batches: Sequence[Sequence[PendingRecord]], *, roll: bool = True
    ) -> list[list[tuple[int, int]] | BaseException]:
        """``append`` for several produces at once, with one write (a segment roll aside): a
        batch with a record that cannot be encoded fails alone; a failed write fails the call.
        One write per round, not per produce: every system call costs a writer thread the GIL
        back from a busy event loop. ``roll=False``: all into the active segment (the loop's
        ``append_in_place``; a roll fsyncs, which the loop must not wait for)."""
        if self._failed or not self._segments:
            raise EventLogError(
                f"{self.topic}[{self.partition}] is {self._failed or 'closed (topic deleted?)'}"
            )
        now_ms = time.time_ns() // 1_000_000
        outcomes: list[list[tuple[int, int]] | BaseException] = []
        pending: list[bytes] = []
        frames: list[tuple[int, int, int]] = []
        active = self._segments[-1]
        pending_size = 0
        offset = active.next_offset
        limit = self.settings.segment_bytes
        for records in batches:
            try:
                encoded = _encode(records, offset, now_ms)
            except _BAD_RECORD as exc:
                outcomes.append(EventLogError(f"record cannot be stored: {exc!r}"))
                continue
            placed: list[tuple[int, int]] = []
            for frame, ts in encoded:
                if (
                    roll
                    and active.size + pending_size + len(frame) > limit
                    and active.size + pending_size
                ):
                    self._write(active, pending, frames)
                    active = self._roll(offset)
                    pending, frames, pending_size = [], [], 0
                pending.append(frame)
                frames.append((offset, ts, len(frame)))
                pending_size += len(frame)
                placed.append((offset, ts))
                offset += 1
            outcomes.append(placed)
        self._write(active, pending, frames)
        return outcomes

    def fits_in_place(self, batches: Sequence[Sequence[PendingRecord]]) -> bool:
        """Whether ``append_in_place`` can take ``batches``: the partition is open and not
        failed, and they fit in the active segment (else a roll is due, which fsyncs: that is
        ``append_batches``' job on the writer thread)."""
        if self._failed or not self._segments:
            return False
        size = count = 0
        for records in batches:
            try:
                size += sum(frame_size(key, value, headers) for key, value, headers, _ in records)
            except _BAD_RECORD:
                continue  # not written: append_in_place fails this batch alone
            count += len(records)
        active = self._segments[-1]
        # as append_batches: a frame that overflows a non-empty segment starts a new one
        return active.size + size <= self.settings.segment_bytes or not (active.size or count > 1)

    def append_in_place(
        self, batches: Sequence[Sequence[PendingRecord]]
    ) -> tuple[list[list[tuple[int, int]] | BaseException], Segment]:
        """``append_batches`` on the event loop, for batches that ``fits_in_place``: one write
        into the active segment, not yet durable (``published`` makes it so once the fsync
        process synced it); returns the outcomes and that segment."""
        return self.append_batches(batches, roll=False), self._segments[-1]

    def retire(self, reason: str) -> None:
        """On the loop, before the writer thread closes the files: take no more appends (so
        the loop never writes to a descriptor the thread may have closed and reused)."""
        self._failed = reason

    def published(self, segment: Segment, size: int, next_offset: int) -> None:
        """``segment`` is durable up to ``size`` (the fsync process said so): readers see the
        records below ``next_offset``."""
        with self._lock:
            segment.durable_size = max(segment.durable_size, size)
            self._high_watermark = max(self._high_watermark, next_offset)

    def sync_failed(self, segment: Segment, reason: str) -> EventLogError:
        """``segment`` could not be synced (here or by the fsync process): the page cache's
        state is unknown, so the partition takes no more writes; returns the produces' error."""
        self._failed = f"fsync failed: {reason}"
        return EventLogError(f"fsync of {segment.path} failed: {reason}")

    def _write(
        self, segment: Segment, pending: list[bytes], frames: list[tuple[int, int, int]]
    ) -> None:
        if not pending:
            return
        try:
            segment.append(b"".join(pending), frames)
        except OSError as exc:
            raise EventLogError(f"write to {segment.path} failed: {exc}") from exc

    def _roll(self, base_offset: int) -> Segment:
        """Seal the active segment (durably) and start a new one at ``base_offset``."""
        sealed = self._segments[-1]
        self._sync_segment(sealed)
        segment = Segment.create(self.directory, base_offset)
        fsync_directory(self.directory)
        with self._lock:
            sealed.durable_size = sealed.size
            self._segments.append(segment)
        self.enforce_retention()
        return segment

    def _sync_segment(self, segment: Segment) -> None:
        try:
            segment.sync()
        except OSError as exc:
            raise self.sync_failed(segment, str(exc)) from exc

    def sync(self) -> None:
        """Make everything appended durable, then publish it to readers."""
        if not self._segments:
            return
        if self._failed:
            raise EventLogError(f"{self.topic}[{self.partition}] is failed: {self._failed}")
        active = self._segments[-1]
        if active.durable_size == active.size and self._high_watermark == active.next_offset:
            return
        self._sync_segment(active)
        with self._lock:
            active.durable_size = active.size
            self._high_watermark = active.next_offset

    def enforce_retention(self, now_ms: int | None = None) -> int:
        """Delete sealed segments past ``retention.bytes``/``retention.ms``; returns how many."""
        settings = self.settings
        if settings.retention_bytes < 0 and settings.retention_ms < 0:
            return 0
        now_ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
        deleted: list[Segment] = []
        with self._lock:
            total = sum(s.size for s in self._segments)
            while len(self._segments) > 1:
                oldest = self._segments[0]
                too_big = 0 <= settings.retention_bytes <= total - oldest.size
                too_old = 0 <= settings.retention_ms < now_ms - oldest.max_timestamp
                if not (too_big or too_old):
                    break
                deleted.append(self._segments.pop(0))
                total -= oldest.size
        for segment in deleted:
            segment.delete()
        return len(deleted)

    def read(self, offset: int, max_records: int, max_bytes: int) -> list[ConsumedRecord]:
        """Durable records from ``offset`` (from the log start when it is below)."""
        with self._lock:
            if offset > self._high_watermark:
                raise OffsetOutOfRange(self.topic, self.partition, offset, self._high_watermark)
            offset = max(offset, self._segments[0].base_offset)
            records: list[ConsumedRecord] = []
            for segment in self._segments_from(offset):
                if len(records) >= max_records or max_bytes <= 0:
                    break
                found, used = segment.read(
                    offset,
                    max_records - len(records),
                    max_bytes,
                    segment.durable_size,
                    must_fit=bool(records),
                )
                records.extend(
                    ConsumedRecord(self.topic, self.partition, r[0], r[1], r[2], r[3], r[4])
                    for r in found
                )
                max_bytes -= used
                offset = segment.next_offset
            return records

    def _segments_from(self, offset: int) -> list[Segment]:
        for index in range(len(self._segments) - 1, -1, -1):
            if self._segments[index].base_offset <= offset:
                return self._segments[index:]
        return list(self._segments)

    def offset_at_time(self, timestamp_ms: int) -> int:
        with self._lock:
            for segment in self._segments:
                found = segment.offset_at_time(timestamp_ms, segment.durable_size)
                if found is not None:
                    return found
            return self._high_watermark

    def close(self) -> None:
        with self._lock:
            for segment in self._segments:
                segment.close()
            self._segments.clear()

    def delete_files(self) -> None:
        self.close()
        for path in self.directory.glob("*"):
            path.unlink()
        self.directory.rmdir()
