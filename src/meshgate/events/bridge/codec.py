"""Sans-io framing of the event-log bridge: length-prefixed JSON messages, no sockets here.

A frame is a 4-byte big-endian body length followed by a UTF-8 JSON object. Bytes travel as
base64 strings (``encode_bytes``/``decode_bytes``); the ``wire`` module decides where.
``FrameDecoder`` takes arbitrary chunks and yields whole messages in order; a frame longer
than ``max_frame`` or a body that is not a JSON object is a ``FrameError``.
"""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

Message = dict[str, Any]

DEFAULT_MAX_FRAME = 64 * 1024 * 1024
_LENGTH = struct.Struct(">I")


class FrameError(ValueError):
    """The peer sent something that is not a valid frame; the connection must be dropped."""


def encode_frame(message: Message) -> bytes:
    """One message as a frame, ready to write."""
    body = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()
    return _LENGTH.pack(len(body)) + body


def encode_bytes(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def decode_bytes(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text, validate=True)


class FrameDecoder:
    """Buffers received bytes and hands back each complete message once."""

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Message]:
        """Add ``data``; return the messages it completed (possibly none)."""
        self._buffer += data
        messages: list[Message] = []
        start = 0
        while len(self._buffer) - start >= _LENGTH.size:
            (length,) = _LENGTH.unpack_from(self._buffer, start)
            if length > self.max_frame:
                raise FrameError(f"frame of {length} bytes exceeds {self.max_frame}")
            end = start + _LENGTH.size + length
            if len(self._buffer) < end:
                break
            messages.append(_parse(bytes(self._buffer[start + _LENGTH.size : end])))
            start = end
        del self._buffer[:start]
        return messages

    @property
    def pending_bytes(self) -> int:
        """Bytes of an incomplete frame still waiting for the rest."""
        return len(self._buffer)


def _parse(body: bytes) -> Message:
    try:
        message = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FrameError(f"frame body is not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise FrameError("frame body is not a JSON object")
    return message
