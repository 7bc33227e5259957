"""On-disk record frames of the embedded log (sans-io: bytes in, bytes out).

A segment file is a sequence of frames, one per record::

    frame  = length:u32  crc:u32  body          (big-endian; length = len(body))
    body   = offset:i64  timestamp_ms:i64  key_len:i32  value_len:i32  header_count:u16
             key  value  header*                (len -1 = null key / value)
    header = name_len:u16  value_len:i32  name(utf-8)  value

``crc`` is CRC-32 (zlib) of ``body``. A frame whose length runs past the end of the data, or
whose CRC does not match, ends the valid part of a segment: recovery truncates there.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator, Sequence
from typing import NamedTuple

FRAME_HEAD = struct.Struct(">II")
BODY_HEAD = struct.Struct(">qqiiH")
HEADER_HEAD = struct.Struct(">Hi")
FRAME_OVERHEAD = FRAME_HEAD.size + BODY_HEAD.size


class StoredRecord(NamedTuple):
    """A decoded frame."""

    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


class FrameInfo(NamedTuple):
    """Where a valid frame sits, for index building."""

    position: int
    end: int
    offset: int
    timestamp_ms: int


def encode_frame(
    offset: int,
    timestamp_ms: int,
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[tuple[str, bytes]],
) -> bytes:
    parts = [
        BODY_HEAD.pack(
            offset,
            timestamp_ms,
            -1 if key is None else len(key),
            -1 if value is None else len(value),
            len(headers),
        )
    ]
    if key:
        parts.append(key)
    if value:
        parts.append(value)
    for name, header_value in headers:
        name_bytes = name.encode()
        parts.append(HEADER_HEAD.pack(len(name_bytes), len(header_value)))
        parts.append(name_bytes)
        parts.append(header_value)
    body = b"".join(parts)
    return FRAME_HEAD.pack(len(body), zlib.crc32(body)) + body


def frame_size(key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]]) -> int:
    """The length of ``encode_frame``'s result for this record, without encoding it."""
    size = FRAME_OVERHEAD + (len(key) if key else 0) + (len(value) if value else 0)
    for name, header_value in headers:
        size += HEADER_HEAD.size + len(name.encode()) + len(header_value)
    return size


def frame_length_at(buf: bytes, pos: int) -> int | None:
    """Total length of the frame starting at ``pos``, or None if its head is not in ``buf``."""
    if pos + FRAME_HEAD.size > len(buf):
        return None
    body_length, _ = FRAME_HEAD.unpack_from(buf, pos)
    return int(FRAME_HEAD.size + body_length)


def scan_frames(buf: bytes, pos: int, expected_offset: int) -> Iterator[FrameInfo]:
    """Valid, complete, consecutive frames from ``pos``; stops at the first one that is not."""
    view = memoryview(buf)
    size = len(buf)
    while pos + FRAME_OVERHEAD <= size:
        body_length, crc = FRAME_HEAD.unpack_from(buf, pos)
        end = pos + FRAME_HEAD.size + body_length
        if body_length < BODY_HEAD.size or end > size:
            return
        if zlib.crc32(view[pos + FRAME_HEAD.size : end]) != crc:
            return
        offset, timestamp_ms, *_ = BODY_HEAD.unpack_from(buf, pos + FRAME_HEAD.size)
        if offset != expected_offset:
            return
        yield FrameInfo(pos, end, offset, timestamp_ms)
        expected_offset += 1
        pos = end


def decode_body(buf: bytes, pos: int) -> StoredRecord:
    """The record whose body starts at ``pos`` (the frame was validated when it was indexed)."""
    offset, timestamp_ms, key_length, value_length, header_count = BODY_HEAD.unpack_from(buf, pos)
    pos += BODY_HEAD.size
    key: bytes | None = None
    if key_length >= 0:
        key = buf[pos : pos + key_length]
        pos += key_length
    value: bytes | None = None
    if value_length >= 0:
        value = buf[pos : pos + value_length]
        pos += value_length
    headers: list[tuple[str, bytes]] = []
    for _ in range(header_count):
        name_length, header_length = HEADER_HEAD.unpack_from(buf, pos)
        pos += HEADER_HEAD.size
        name = buf[pos : pos + name_length].decode()
        pos += name_length
        headers.append((name, buf[pos : pos + header_length]))
        pos += header_length
    return StoredRecord(offset, timestamp_ms, key, value, headers)


def decode_frames(buf: bytes, pos: int) -> Iterator[tuple[StoredRecord, int]]:
    """Complete frames of ``buf`` from ``pos`` with the position after each."""
    size = len(buf)
    while True:
        length = frame_length_at(buf, pos)
        if length is None or pos + length > size:
            return
        yield decode_body(buf, pos + FRAME_HEAD.size), pos + length
        pos += length
