"""Kong ``kafka-upstream``'s message: the request as a JSON object (sans-io).

Fields by config switch: ``forward_method`` → ``method``; ``forward_uri`` → ``uri`` (the path)
and ``uri_args`` (query, one value or a list per name); ``forward_headers`` → ``headers``
(lower-case names, one value or a list); ``forward_body`` → ``body``, ``body_args`` and
``body_base64``. Body rules (Kong's): a urlencoded or JSON body is also parsed into
``body_args`` (a parse failure is an error: the message is not sent); the body is base64
(``body_base64: true``) unless the content type is text/plain, text/html, application/xml,
text/xml or application/soap+xml.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs

from meshgate.events.http_api.b64 import b64encode
from meshgate.events.http_api.params import first

_TEXT_TYPES = frozenset(
    {"text/plain", "text/html", "application/xml", "text/xml", "application/soap+xml"}
)


class EnvelopeError(ValueError):
    """The body does not parse as its content type says (HTTP 400)."""


def _flat(values: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    return {k: (v[0] if len(v) == 1 else list(v)) for k, v in values.items()}


def body_fields(content_type: str | None, body: bytes) -> dict[str, Any]:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    args: Any = {}
    if media == "application/x-www-form-urlencoded":
        try:
            args = _flat(
                parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body))
            )
        except (UnicodeDecodeError, ValueError) as exc:
            raise EnvelopeError("form body does not parse") from exc
    elif media == "application/json" or media.endswith("+json"):
        try:
            args = json.loads(body) if body else {}
        except ValueError as exc:
            raise EnvelopeError("JSON body does not parse") from exc
    if media in _TEXT_TYPES:
        try:
            return {"body": body.decode("utf-8"), "body_args": args}
        except UnicodeDecodeError:
            pass
    return {"body": b64encode(body), "body_args": args, "body_base64": True}


def build_envelope(
    *,
    method: str,
    path: str,
    query: Mapping[str, Sequence[str]],
    headers: Mapping[str, Sequence[str]],
    body: bytes,
    forward_method: bool,
    forward_uri: bool,
    forward_headers: bool,
    forward_body: bool,
) -> bytes:
    message: dict[str, Any] = {}
    if forward_method:
        message["method"] = method
    if forward_uri:
        message["uri"] = path
        message["uri_args"] = _flat(query)
    if forward_headers:
        message["headers"] = _flat(headers)
    if forward_body:
        content_type = first(headers.get("content-type"))
        message.update(body_fields(content_type, body))
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()
