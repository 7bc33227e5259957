"""Server-Sent Events framing (WHATWG HTML §9.2), sans-io: an encoder and a decoder.

``encode_event`` writes one event; a multi-line ``data`` becomes several ``data:`` lines.
An event with only an ``id`` (``encode_id``) moves the client's last event ID without
dispatching anything — used to tell a client where it stands before any record arrives.
``SseDecoder`` parses a byte stream fed in any split (tests; clients).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def _check_single_line(name: str, value: str) -> None:
    if "\n" in value or "\r" in value or (name == "id" and "\0" in value):
        raise ValueError(f"SSE {name} must be one line")


def encode_event(
    data: str, *, event_id: str | None = None, event: str | None = None, retry_ms: int | None = None
) -> bytes:
    lines: list[str] = []
    if event is not None:
        _check_single_line("event", event)
        lines.append(f"event: {event}")
    if event_id is not None:
        _check_single_line("id", event_id)
        lines.append(f"id: {event_id}")
    if retry_ms is not None:
        lines.append(f"retry: {int(retry_ms)}")
    lines.extend(f"data: {line}" for line in _LINE_BREAK.split(data))
    return ("\n".join(lines) + "\n\n").encode("utf-8")


def encode_id(event_id: str, *, retry_ms: int | None = None) -> bytes:
    """An id-only block: sets the client's Last-Event-ID, dispatches no event."""
    _check_single_line("id", event_id)
    retry = f"retry: {int(retry_ms)}\n" if retry_ms is not None else ""
    return f"{retry}id: {event_id}\n\n".encode()


def encode_comment(text: str = "") -> bytes:
    """A comment line (heartbeat): ignored by clients, keeps proxies from idling out."""
    return b"".join(f":{' ' if line else ''}{line}\n".encode() for line in _LINE_BREAK.split(text))


@dataclass(frozen=True, slots=True)
class SseEvent:
    data: str
    event: str
    last_event_id: str


class SseDecoder:
    """Incremental SSE parser: ``feed(bytes) -> [SseEvent]`` (dispatch rules of the spec)."""

    def __init__(self) -> None:
        self._pending = b""
        self._data: list[str] = []
        self._event = ""
        self._id_buffer = ""
        self.last_event_id = ""
        self.retry_ms: int | None = None
        self._bom_checked = False

    def feed(self, chunk: bytes) -> list[SseEvent]:
        self._pending += chunk
        events: list[SseEvent] = []
        while True:
            match = re.search(rb"\r\n|\r|\n", self._pending)
            if match is None:
                break
            if match.group() == b"\r" and match.end() == len(self._pending):
                break  # may be the first half of CRLF
            line = self._pending[: match.start()].decode("utf-8", "replace")
            self._pending = self._pending[match.end() :]
            if not self._bom_checked:
                self._bom_checked = True
                line = line.removeprefix("\ufeff")
            event = self._line(line)
            if event is not None:
                events.append(event)
        return events

    def _line(self, line: str) -> SseEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id_buffer = value
        elif name == "retry" and value.isdigit():
            self.retry_ms = int(value)
        return None

    def _dispatch(self) -> SseEvent | None:
        self.last_event_id = self._id_buffer
        data, self._data = self._data, []
        event, self._event = self._event, ""
        if not data:
            return None
        return SseEvent("\n".join(data), event or "message", self.last_event_id)
