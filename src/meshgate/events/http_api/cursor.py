"""The stateless, portable consume cursor: per-partition next offsets in a signed token.

Token = ``base64url(payload) "." base64url(HMAC-SHA256(secret, base64url(payload)))`` where
payload is the compact JSON ``{"topic": t, "partitions": {"<p>": next_offset, ...}}`` (keys
sorted). Any gateway node holding the same ``secret`` accepts a token another node issued; a
token whose signature, shape or size is wrong raises ``CursorError`` (HTTP 400). Nothing is
stored server-side. SSE uses the token as the event ``id`` so ``Last-Event-ID`` resumes at the
record after the last one the client saw.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from meshgate.events.http_api.b64 import b64url_decode, b64url_encode

MAX_TOKEN_CHARS = 16 * 1024
MAX_PARTITIONS = 4096
_MAX_INT64 = 2**63 - 1


class CursorError(ValueError):
    """A cursor token that is not one of ours (tampered, truncated, foreign secret)."""


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a reader of ``topic`` stands: ``{partition: next offset to read}``."""

    topic: str
    positions: Mapping[int, int] = field(default_factory=dict)

    def advanced(self, partition: int, next_offset: int) -> Cursor:
        positions = dict(self.positions)
        positions[partition] = next_offset
        return Cursor(self.topic, positions)


class CursorCodec:
    """Encodes and verifies cursor tokens with one node-shared secret."""

    __slots__ = ("_secret",)

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("cursor secret must be at least 16 bytes")
        self._secret = secret

    def _sign(self, payload_b64: str) -> str:
        mac = hmac.new(self._secret, payload_b64.encode("ascii"), hashlib.sha256)
        return b64url_encode(mac.digest())

    def encode(self, cursor: Cursor) -> str:
        body = {
            "topic": cursor.topic,
            "partitions": {str(p): o for p, o in sorted(cursor.positions.items())},
        }
        payload = json.dumps(body, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
        payload_b64 = b64url_encode(payload.encode("utf-8"))
        return f"{payload_b64}.{self._sign(payload_b64)}"

    def decode(self, token: str) -> Cursor:
        if len(token) > MAX_TOKEN_CHARS:
            raise CursorError("cursor too long")
        payload_b64, dot, signature = token.strip().partition(".")
        if not dot or not hmac.compare_digest(self._sign(payload_b64), signature):
            raise CursorError("invalid cursor signature")
        try:
            body = json.loads(b64url_decode(payload_b64))
        except ValueError as exc:
            raise CursorError("malformed cursor") from exc
        return _cursor_from(body)


def _cursor_from(body: object) -> Cursor:
    if not isinstance(body, dict) or set(body) != {"topic", "partitions"}:
        raise CursorError("malformed cursor")
    topic, partitions = body["topic"], body["partitions"]
    if not isinstance(topic, str) or not topic or not isinstance(partitions, dict):
        raise CursorError("malformed cursor")
    if len(partitions) > MAX_PARTITIONS:
        raise CursorError("too many partitions in cursor")
    positions: dict[int, int] = {}
    for key, offset in partitions.items():
        if not key.isdigit() or type(offset) is not int or not 0 <= offset <= _MAX_INT64:
            raise CursorError("malformed cursor")
        positions[int(key)] = offset
    return Cursor(topic, positions)


def node_secret(directory: str | os.PathLike[str]) -> bytes:
    """This node's cursor secret, made once and kept in ``directory`` (workers share it).

    Used when a plugin config has no ``cursor_secret``: cursors then work across the workers
    and restarts of one node, not across nodes (configure ``cursor_secret`` for that).
    """
    path = Path(directory) / "cursor.secret"
    try:
        return bytes.fromhex(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fresh = secrets.token_bytes(32)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(fresh.hex())
    try:
        os.link(tmp, path)  # first writer wins; a racing worker reads the winner's secret
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return bytes.fromhex(path.read_text().strip())
