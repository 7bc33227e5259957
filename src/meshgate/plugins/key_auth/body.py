"""The request body as key-auth reads it (Kong's ``kong.request.get_body``): form fields of
``application/x-www-form-urlencoded`` and ``multipart/form-data`` bodies, top-level members of
a JSON object; and the same body with one field removed (``hide_credentials``)."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl, quote_plus

FORM = "form"
JSON = "json"
MULTIPART = "multipart"

_BOUNDARY = re.compile(r'boundary=(?:"([^"]+)"|([^\s;]+))', re.IGNORECASE)
_PART_NAME = re.compile(rb'\bname="([^"]*)"', re.IGNORECASE)


def body_kind(content_type: str | None) -> tuple[str, bytes] | None:
    """``(kind, multipart boundary)`` for a body key-auth can read, else None."""
    if not content_type:
        return None
    lowered = content_type.lower()
    if lowered.startswith("application/x-www-form-urlencoded"):
        return FORM, b""
    if lowered.startswith("multipart/form-data"):
        found = _BOUNDARY.search(content_type)
        if found is None:
            return None
        return MULTIPART, (found.group(1) or found.group(2)).encode("latin-1", "replace")
    if lowered.startswith("application/json") or "+json" in lowered.partition(";")[0]:
        return JSON, b""
    return None


def _parts(raw: bytes, boundary: bytes) -> list[bytes]:
    """The parts of a multipart body (each: headers, blank line, content), in order."""
    delimiter = b"--" + boundary
    pieces = raw.split(delimiter)
    parts = []
    for piece in pieces[1:]:
        if piece.startswith(b"--"):
            break
        parts.append(piece.removeprefix(b"\r\n").removesuffix(b"\r\n"))
    return parts


def body_values(raw: bytes, kind: str, boundary: bytes) -> dict[str, Any]:
    """Field name -> value (a str; a list when repeated; JSON values as they are)."""
    if kind == JSON:
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):
            return {}
        return data if isinstance(data, dict) else {}
    values: dict[str, Any] = {}
    if kind == FORM:
        pairs = parse_qsl(raw.decode("utf-8", "surrogateescape"), keep_blank_values=True)
    else:
        pairs = []
        for part in _parts(raw, boundary):
            head, _, content = part.partition(b"\r\n\r\n")
            part_name = _PART_NAME.search(head)
            if part_name is not None:
                pairs.append(
                    (
                        part_name.group(1).decode("utf-8", "surrogateescape"),
                        content.decode("utf-8", "surrogateescape"),
                    )
                )
    for name, value in pairs:
        previous = values.get(name)
        if previous is None:
            values[name] = value
        elif isinstance(previous, list):
            previous.append(value)
        else:
            values[name] = [previous, value]
    return values


def without_field(raw: bytes, kind: str, boundary: bytes, field: str) -> bytes:
    """The body re-encoded without ``field``."""
    if kind == JSON:
        data = body_values(raw, kind, boundary)
        data.pop(field, None)
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode(
            "utf-8", "surrogateescape"
        )
    if kind == FORM:
        pairs = parse_qsl(raw.decode("utf-8", "surrogateescape"), keep_blank_values=True)
        return "&".join(
            f"{quote_plus(name, errors='surrogateescape')}={quote_plus(value, errors='surrogateescape')}"
            for name, value in pairs
            if name != field
        ).encode("ascii")
    wanted = field.encode("utf-8", "surrogateescape")
    kept = []
    for part in _parts(raw, boundary):
        head = part.partition(b"\r\n\r\n")[0]
        name = _PART_NAME.search(head)
        if name is None or name.group(1) != wanted:
            kept.append(part)
    delimiter = b"--" + boundary
    return b"".join(delimiter + b"\r\n" + part + b"\r\n" for part in kept) + delimiter + b"--\r\n"
