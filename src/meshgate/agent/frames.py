"""Length-prefixed JSON frames between a supervisor and its worker processes (sans-io)."""

from __future__ import annotations

import json
import struct
from typing import Any

_HEADER = struct.Struct("!I")
MAX_FRAME = 512 * 1024 * 1024


class FrameError(ValueError):
    """The peer sent something that is not a frame."""


def encode(message: dict[str, Any]) -> bytes:
    """One frame: a 4-byte big-endian length, then the message as UTF-8 JSON."""
    body = json.dumps(message, separators=(",", ":")).encode()
    return _HEADER.pack(len(body)) + body


class FrameDecoder:
    """Feed bytes in any pieces; take whole messages out."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        self._buf += data
        out: list[dict[str, Any]] = []
        while len(self._buf) >= _HEADER.size:
            (size,) = _HEADER.unpack_from(self._buf)
            if size > MAX_FRAME:
                raise FrameError(f"frame of {size} bytes is over the {MAX_FRAME} limit")
            end = _HEADER.size + size
            if len(self._buf) < end:
                break
            body = bytes(self._buf[_HEADER.size : end])
            del self._buf[:end]
            try:
                message = json.loads(body)
            except ValueError as exc:
                raise FrameError(f"frame is not JSON: {exc}") from exc
            if not isinstance(message, dict):
                raise FrameError("frame is not a JSON object")
            out.append(message)
        return out

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame held so far."""
        return len(self._buf)
