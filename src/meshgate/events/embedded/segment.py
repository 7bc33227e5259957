"""One segment file of a partition: append frames, keep a sparse in-memory index, read back.

A segment is named after its first offset (``00000000000000000042.log``). The index holds one
entry every ``INDEX_INTERVAL`` bytes: the entry's offset, file position and the largest
timestamp of the segment's records before it (monotonic, so time lookups can bisect). It is
rebuilt by scanning the file on open, which also finds where the valid frames end.

Not thread-safe on its own: ``PartitionLog`` serialises writers and guards readers.
"""

from __future__ import annotations

import os
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from pathlib import Path

from meshgate.events.embedded.records import (
    FRAME_HEAD,
    StoredRecord,
    decode_body,
    decode_frames,
    frame_length_at,
    scan_frames,
)

INDEX_INTERVAL = 8 * 1024
SCAN_CHUNK = 4 * 1024 * 1024
READ_CHUNK = 64 * 1024
SUFFIX = ".log"
NO_TIMESTAMP = -(1 << 63)


def segment_path(directory: Path, base_offset: int) -> Path:
    return directory / f"{base_offset:020d}{SUFFIX}"


class Segment:
    """A segment file open for reading (and appending, when it is the partition's last)."""

    def __init__(self, path: Path, base_offset: int) -> None:
        self.path = path
        self.base_offset = base_offset
        self.next_offset = base_offset
        self.size = 0
        self.durable_size = 0
        self.max_timestamp = NO_TIMESTAMP
        self._index_offsets = array("q")
        self._index_positions = array("q")
        self._index_max_ts_before = array("q")
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)

    @classmethod
    def create(cls, directory: Path, base_offset: int) -> Segment:
        return cls(segment_path(directory, base_offset), base_offset)

    def load(self) -> int:
        """Index every valid frame; returns the file size, larger than ``size`` if torn."""
        file_size = os.fstat(self._fd).st_size
        pos = 0
        while pos < file_size:
            chunk_start = pos
            # a torn head may claim any length: never read past the end of the file
            want = min(file_size - pos, max(SCAN_CHUNK, self._frame_len_at(pos)))
            buf = os.pread(self._fd, want, pos)
            advanced = False
            for frame in scan_frames(buf, 0, self.next_offset):
                self._note_frame(chunk_start + frame.position, frame.offset, frame.timestamp_ms)
                pos = chunk_start + frame.end
                self.size = pos
                advanced = True
            if not advanced:
                break
        self.durable_size = self.size
        return file_size

    def _frame_len_at(self, pos: int) -> int:
        head = os.pread(self._fd, FRAME_HEAD.size, pos)
        return frame_length_at(head, 0) or 0

    def truncate_to_valid(self) -> None:
        """Cut a torn or corrupt tail off the file and make the cut durable."""
        os.ftruncate(self._fd, self.size)
        os.fsync(self._fd)

    def _note_frame(self, position: int, offset: int, timestamp_ms: int) -> None:
        if not self._index_positions or position - self._index_positions[-1] >= INDEX_INTERVAL:
            self._index_offsets.append(offset)
            self._index_positions.append(position)
            self._index_max_ts_before.append(self.max_timestamp)
        self.max_timestamp = max(self.max_timestamp, timestamp_ms)
        self.next_offset = offset + 1

    def append(self, data: bytes, frames: list[tuple[int, int, int]]) -> None:
        """Write ``data`` (the concatenated frames) and index ``(offset, ts, length)`` of each."""
        written = 0
        try:
            while written < len(data):
                written += os.write(self._fd, data[written:])
        except OSError:
            os.ftruncate(self._fd, self.size)
            raise
        position = self.size
        for offset, timestamp_ms, length in frames:
            self._note_frame(position, offset, timestamp_ms)
            position += length
        self.size = position

    def sync(self) -> None:
        os.fsync(self._fd)

    def fileno(self) -> int:
        return self._fd

    def position_of(self, offset: int) -> int:
        """File position of the index entry at or before ``offset``."""
        slot = bisect_right(self._index_offsets, offset) - 1
        return self._index_positions[max(slot, 0)] if self._index_positions else 0

    def _iter_records(self, pos: int, limit: int, chunk: int) -> Iterator[tuple[StoredRecord, int]]:
        """Records from file position ``pos`` below ``limit``, with each frame's length."""
        while pos < limit:
            buf = os.pread(self._fd, min(limit - pos, chunk), pos)
            consumed = 0
            for record, end in decode_frames(buf, 0):
                yield record, end - consumed
                consumed = end
            if consumed == 0:
                # a frame larger than the chunk: read it whole
                length = frame_length_at(buf, 0) or 0
                if length <= 0:
                    return
                buf = os.pread(self._fd, length, pos)
                yield decode_body(buf, FRAME_HEAD.size), length
                consumed = length
            pos += consumed

    def read(
        self, offset: int, max_records: int, max_bytes: int, limit: int, *, must_fit: bool
    ) -> tuple[list[StoredRecord], int]:
        """Records from ``offset`` below file position ``limit``; also returns bytes used.

        Unless ``must_fit``, the first record is returned even if bigger than ``max_bytes``.
        """
        records: list[StoredRecord] = []
        used = 0
        chunk = max(READ_CHUNK, min(max_bytes, 8 * READ_CHUNK) + INDEX_INTERVAL)
        for record, length in self._iter_records(self.position_of(offset), limit, chunk):
            if record.offset < offset:
                continue
            if (records or must_fit) and used + length > max_bytes:
                break
            records.append(record)
            used += length
            if len(records) >= max_records or used >= max_bytes:
                break
        return records, used

    def first_position_at_time(self, timestamp_ms: int) -> int:
        """Position to scan from for the first record with timestamp ≥ ``timestamp_ms``."""
        slot = bisect_left(self._index_max_ts_before, timestamp_ms) - 1
        return self._index_positions[max(slot, 0)] if self._index_positions else 0

    def offset_at_time(self, timestamp_ms: int, limit: int) -> int | None:
        """First offset with timestamp ≥ ``timestamp_ms`` below position ``limit``, or None."""
        if self.max_timestamp < timestamp_ms:
            return None
        start = self.first_position_at_time(timestamp_ms)
        for record, _ in self._iter_records(start, limit, READ_CHUNK):
            if record.timestamp_ms >= timestamp_ms:
                return record.offset
        return None

    def close(self) -> None:
        os.close(self._fd)

    def delete(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)
