"""The dataplane ⇄ control-plane wire protocol ("mgdp/1"): messages and their codec (sans-io).

One TLS connection per sidecar to the control plane's DP port (default 127.0.0.1:5678).
Each message is a frame: a 4-byte big-endian length, then a UTF-8 JSON object with a
``type`` (``meshgate.agent.frames``).  This module only turns messages into bytes and bytes
into checked messages; the I/O lives in ``meshgate.agent.dataplane.client`` (DP side) and
``meshgate.controlplane.distribution.server`` (CP side).

Conversation::

    DP → CP  hello   {protocol: 1, token, dataplane: <Dataplane resource>, csr: <PEM>,
                      running: <snapshot version the DP serves now, or null>}
    CP → DP  welcome {mesh, name}                        (or)
    CP → DP  refused {error}                             and the CP closes the connection
    CP → DP  snapshot {version, snapshot: <Snapshot JSON>, cert_not_after: <ISO time|null>}
    DP → CP  ack     {version}                           the snapshot runs now
    DP → CP  nack    {version, error}                    refused; the DP keeps the old one
    CP → DP  ping {}  /  DP → CP  pong {}                liveness, every ``PING_INTERVAL``
    DP → CP  bye     {}                                  graceful leave: the CP forgets it

The CP pushes a snapshot after ``welcome`` and again whenever the dataplane's snapshot
changes (a new ``version``), including when its workload certificate is renewed.  The DP's
private key never travels: the CP signs the public key of ``csr`` and sends snapshots whose
workload ``Certificate.key`` is the empty string; the DP puts its own key there.
"""

from __future__ import annotations

from typing import Any

from meshgate.agent.frames import FrameDecoder, FrameError, encode

PROTOCOL_VERSION = 1
PING_INTERVAL = 10.0
MAX_MESSAGE = 64 * 1024 * 1024
LOCAL_KEY = ""  # a certificate key equal to this is the dataplane's own private key

# message type -> the fields it must carry
_REQUIRED: dict[str, tuple[str, ...]] = {
    "hello": ("protocol", "token", "dataplane", "csr"),
    "welcome": ("mesh", "name"),
    "refused": ("error",),
    "snapshot": ("version", "snapshot"),
    "ack": ("version",),
    "nack": ("version", "error"),
    "ping": (),
    "pong": (),
    "bye": (),
}


class ProtocolError(ValueError):
    """The peer broke the protocol (bad frame, unknown message, missing field)."""


def message(kind: str, **fields: Any) -> bytes:
    """One encoded message of type ``kind``."""
    if kind not in _REQUIRED:
        raise ValueError(f"unknown message type {kind!r}")
    return encode({"type": kind, **fields})


class MessageDecoder:
    """Feed received bytes; take out checked messages (``ProtocolError`` on garbage)."""

    def __init__(self) -> None:
        self._frames = FrameDecoder()

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        try:
            frames = self._frames.feed(data)
        except FrameError as exc:
            raise ProtocolError(str(exc)) from None
        if self._frames.pending > MAX_MESSAGE:
            raise ProtocolError(f"message over {MAX_MESSAGE} bytes")
        for frame in frames:
            check(frame)
        return frames


def check(frame: dict[str, Any]) -> None:
    kind = frame.get("type")
    required = _REQUIRED.get(kind) if isinstance(kind, str) else None
    if required is None:
        raise ProtocolError(f"unknown message type {kind!r}")
    missing = [name for name in required if name not in frame]
    if missing:
        raise ProtocolError(f"{kind} message lacks {', '.join(missing)}")
