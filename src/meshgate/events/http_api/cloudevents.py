"""CloudEvents 1.0 between HTTP and Kafka records, both content modes, sans-io.

HTTP binary mode (``ce-*`` headers, body = data) ⇄ Kafka binary mode (``ce_*`` record headers,
value = data): ``ce-x`` → ``ce_x`` (HTTP percent-encoding undone; Kafka header values are
UTF-8), ``Content-Type`` → ``content-type`` (= ``datacontenttype``). Structured mode
(``Content-Type: application/cloudevents+json``): the event JSON is the record value as sent,
``content-type`` header kept. In both modes the ``partitionkey`` extension becomes the record
key. Missing required attributes (specversion 1.0, id, source, type) raise ``CloudEventError``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

from meshgate.events.api import ConsumedRecord
from meshgate.events.http_api.b64 import b64encode
from meshgate.events.http_api.params import first

STRUCTURED_JSON = "application/cloudevents+json"
_REQUIRED = ("specversion", "id", "source", "type")
_SAFE = frozenset(range(0x21, 0x7F)) - {ord('"'), ord("%")}


class CloudEventError(ValueError):
    """Not a valid CloudEvent (HTTP 400)."""


@dataclass(frozen=True, slots=True)
class EventRecord:
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]


def mode_of(headers: Mapping[str, Sequence[str]]) -> str | None:
    """``"structured"``, ``"binary"`` or ``None`` for an HTTP request (lower-case names)."""
    content_type = (headers.get("content-type") or [""])[0]
    return mode_for(content_type, "ce-specversion" in headers)


def mode_for(content_type: str | None, has_specversion: bool) -> str | None:
    """``mode_of`` from the two headers it looks at (no header table needed)."""
    if content_type and content_type[:23].lower() == "application/cloudevents":
        if content_type.lower().startswith("application/cloudevents-batch"):
            raise CloudEventError("batched CloudEvents are not supported")
        return "structured"
    return "binary" if has_specversion else None


def percent_decode(value: str) -> bytes:
    return unquote_to_bytes(value)


def percent_encode(value: bytes) -> str:
    return "".join(chr(b) if b in _SAFE else f"%{b:02X}" for b in value)


def _check_version(version: str) -> None:
    if version != "1.0":
        raise CloudEventError(f"unsupported CloudEvents specversion {version!r}")


def from_http_binary(headers: Mapping[str, Sequence[str]], body: bytes) -> EventRecord:
    attributes: list[tuple[str, bytes]] = []
    for name, values in headers.items():
        if name.startswith("ce-") and len(name) > 3 and values:
            attributes.append((f"ce_{name[3:]}", percent_decode(values[0])))
    found = dict(attributes)
    for required in _REQUIRED:
        if not found.get(f"ce_{required}"):
            raise CloudEventError(f"missing CloudEvents attribute ce-{required}")
    _check_version(found["ce_specversion"].decode("utf-8", "replace"))
    record_headers = list(attributes)
    content_type = first(headers.get("content-type"))
    if content_type:
        record_headers.append(("content-type", content_type.encode("latin-1")))
    value = body if body or content_type else None
    return EventRecord(found.get("ce_partitionkey"), value, tuple(record_headers))


def from_http_structured(content_type: str, body: bytes) -> EventRecord:
    if not content_type.lower().startswith(STRUCTURED_JSON):
        raise CloudEventError(f"unsupported structured format {content_type!r}")
    try:
        event = json.loads(body)
    except ValueError as exc:
        raise CloudEventError("structured CloudEvent is not valid JSON") from exc
    if not isinstance(event, dict):
        raise CloudEventError("structured CloudEvent must be a JSON object")
    for required in _REQUIRED:
        if not isinstance(event.get(required), str) or not event[required]:
            raise CloudEventError(f"missing CloudEvents attribute {required!r}")
    _check_version(event["specversion"])
    key = event.get("partitionkey")
    return EventRecord(
        key.encode() if isinstance(key, str) else None,
        body,
        (("content-type", content_type.encode("latin-1")),),
    )


def record_mode(record: ConsumedRecord) -> str | None:
    """``"structured"``, ``"binary"`` or ``None`` for a stored record."""
    for name, value in record.headers:
        if name == "content-type" and value.lower().startswith(STRUCTURED_JSON.encode()):
            return "structured"
    if any(name == "ce_specversion" for name, _ in record.headers):
        return "binary"
    return None


def to_http(record: ConsumedRecord) -> tuple[list[tuple[str, str]], bytes] | None:
    """HTTP headers and body for a CloudEvent record (its own mode); None if not an event."""
    mode = record_mode(record)
    if mode is None:
        return None
    headers: list[tuple[str, str]] = []
    for name, value in record.headers:
        if name == "content-type":
            headers.append(("Content-Type", value.decode("latin-1")))
        elif mode == "binary" and name.startswith("ce_"):
            headers.append((f"ce-{name[3:]}", percent_encode(value)))
    return headers, record.value or b""


def to_structured(record: ConsumedRecord) -> dict[str, Any] | None:
    """The record as a structured (JSON) CloudEvent, or None when it is not an event."""
    mode = record_mode(record)
    if mode == "structured":
        try:
            parsed = json.loads(record.value or b"")
        except ValueError:
            return None
        return parsed if isinstance(parsed, dict) else None
    if mode is None:
        return None
    event: dict[str, Any] = {}
    content_type: str | None = None
    for name, value in record.headers:
        if name.startswith("ce_"):
            event[name[3:]] = value.decode("utf-8", "replace")
        elif name == "content-type":
            content_type = value.decode("latin-1")
    if content_type:
        event["datacontenttype"] = content_type
    if record.value is not None:
        event.update(_data_field(record.value, content_type))
    return event


def _data_field(value: bytes, content_type: str | None) -> dict[str, Any]:
    media = (content_type or "application/json").split(";", 1)[0].strip().lower()
    if media == "application/json" or media.endswith("+json"):
        try:
            return {"data": json.loads(value)}
        except ValueError:
            pass
    if media.startswith("text/") or media in ("application/xml",):
        try:
            return {"data": value.decode("utf-8")}
        except UnicodeDecodeError:
            pass
    return {"data_base64": b64encode(value)}
