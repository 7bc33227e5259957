"""WebSocket (RFC 6455) for the server side, sans-io: handshake key, frame encoder, decoder.

The decoder takes client bytes in any split and yields whole messages (fragments joined)
and control frames; it enforces the client-to-server masking rule, the control-frame rules
and ``max_message`` (``ProtocolViolation.close_code`` says which close code to send: 1002
protocol error, 1009 too big, 1007 bad UTF-8 in a text message).
"""

from __future__ import annotations

import base64
import hashlib
import struct
from dataclasses import dataclass

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_CONTROL = frozenset({OP_CLOSE, OP_PING, OP_PONG})
_DATA = frozenset({OP_TEXT, OP_BINARY})


class ProtocolViolation(Exception):
    def __init__(self, message: str, close_code: int = 1002) -> None:
        super().__init__(message)
        self.close_code = close_code


def accept_key(client_key: str) -> str:
    """``Sec-WebSocket-Accept`` for a ``Sec-WebSocket-Key``."""
    key = client_key.strip()
    try:
        if len(base64.b64decode(key, validate=True)) != 16:
            raise ValueError
    except ValueError as exc:
        raise ProtocolViolation("invalid Sec-WebSocket-Key") from exc
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + _GUID).digest()).decode()


def encode_frame(
    opcode: int, payload: bytes, *, fin: bool = True, mask: bytes | None = None
) -> bytes:
    """One frame (servers send unmasked; ``mask`` is for building client frames in tests)."""
    head = bytearray([(0x80 if fin else 0) | opcode])
    mask_bit = 0x80 if mask is not None else 0
    size = len(payload)
    if size < 126:
        head.append(mask_bit | size)
    elif size < 65536:
        head.append(mask_bit | 126)
        head += struct.pack("!H", size)
    else:
        head.append(mask_bit | 127)
        head += struct.pack("!Q", size)
    if mask is not None:
        head += mask
        payload = _unmask(payload, mask)
    return bytes(head) + payload


def close_frame(code: int = 1000, reason: str = "") -> bytes:
    return encode_frame(OP_CLOSE, struct.pack("!H", code) + reason.encode()[:123])


def _unmask(data: bytes, mask: bytes) -> bytes:
    if not data:
        return data
    repeated = (mask * (len(data) // 4 + 1))[: len(data)]
    return (int.from_bytes(data, "big") ^ int.from_bytes(repeated, "big")).to_bytes(
        len(data), "big"
    )


@dataclass(frozen=True, slots=True)
class Message:
    """A whole data message (``OP_TEXT``/``OP_BINARY``) or a control frame."""

    opcode: int
    payload: bytes

    @property
    def close_code(self) -> int | None:
        if self.opcode != OP_CLOSE or len(self.payload) < 2:
            return None
        code: int = struct.unpack("!H", self.payload[:2])[0]
        return code


class FrameDecoder:
    """Client-to-server frames → ``Message`` list; raises ``ProtocolViolation``."""

    def __init__(self, max_message: int = 1024 * 1024) -> None:
        self.max_message = max_message
        self._buffer = bytearray()
        self._parts: list[bytes] = []
        self._parts_size = 0
        self._message_opcode: int | None = None

    def feed(self, data: bytes) -> list[Message]:
        self._buffer += data
        out: list[Message] = []
        while True:
            frame = self._frame()
            if frame is None:
                return out
            message = self._assemble(*frame)
            if message is not None:
                out.append(message)

    def _frame(self) -> tuple[bool, int, bytes] | None:
        buf = self._buffer
        if len(buf) < 2:
            return None
        first, second = buf[0], buf[1]
        if first & 0x70:
            raise ProtocolViolation("reserved bits set")
        if not second & 0x80:
            raise ProtocolViolation("client frames must be masked")
        size, pos = second & 0x7F, 2
        if size == 126:
            if len(buf) < 4:
                return None
            size, pos = struct.unpack_from("!H", buf, 2)[0], 4
        elif size == 127:
            if len(buf) < 10:
                return None
            size, pos = struct.unpack_from("!Q", buf, 2)[0], 10
        opcode, fin = first & 0x0F, bool(first & 0x80)
        if opcode in _CONTROL and (size > 125 or not fin):
            raise ProtocolViolation("invalid control frame")
        if size > self.max_message:
            raise ProtocolViolation("message too big", 1009)
        if len(buf) < pos + 4 + size:
            return None
        mask = bytes(buf[pos : pos + 4])
        payload = _unmask(bytes(buf[pos + 4 : pos + 4 + size]), mask)
        del buf[: pos + 4 + size]
        return fin, opcode, payload

    def _assemble(self, fin: bool, opcode: int, payload: bytes) -> Message | None:
        if opcode in _CONTROL:
            return Message(opcode, payload)
        if opcode in _DATA:
            if self._message_opcode is not None:
                raise ProtocolViolation("new message inside a fragmented one")
            self._message_opcode = opcode
        elif opcode == OP_CONT:
            if self._message_opcode is None:
                raise ProtocolViolation("continuation without a message")
        else:
            raise ProtocolViolation(f"unknown opcode {opcode}")
        self._parts_size += len(payload)
        if self._parts_size > self.max_message:
            raise ProtocolViolation("message too big", 1009)
        self._parts.append(payload)
        if not fin:
            return None
        whole = b"".join(self._parts)
        message_opcode = self._message_opcode
        self._parts, self._parts_size, self._message_opcode = [], 0, None
        if message_opcode == OP_TEXT:
            try:
                whole.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ProtocolViolation("invalid UTF-8 in text message", 1007) from exc
        assert message_opcode is not None
        return Message(message_opcode, whole)
