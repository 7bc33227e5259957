"""response-transformer: in the response phase, transform headers (remove, rename, replace,
add, append); with JSON operations, buffer a JSON response body (bounded by
``body_buffer_limit``) and transform its top-level fields at the end (Kong's behaviour and
PRIORITY 800).

A body that is not JSON (by Content-Type), does not parse, is not an object, or outgrows the
buffer limit is sent untouched.  Handlers without JSON operations have no body phase at all
(the ``Handler`` class picks its body-filtering subclass when built), so their responses
stream as they come.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from typing import Any

from meshgate.proxy.filters.api import CompileEnv, PluginHandler, RequestContext
from meshgate.snapshot import PluginInstance

from .schema import Config, ValuesRecord, split_pair

_log = logging.getLogger("meshgate.plugins.response-transformer")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_ENGINE_OWNED = frozenset(
    {"content-length", "transfer-encoding", "connection", "keep-alive", "proxy-connection",
     "te", "trailer", "upgrade"}
)  # fmt: skip
BODY_BUFFER_LIMIT = 8 * 1024 * 1024
_JSON_MEDIA = re.compile(r"^\s*application/(?:[\w.+-]*\+)?json\s*(?:;|$)", re.IGNORECASE)

_Missing = object()


def is_json(content_type: str | None) -> bool:
    """``application/json`` (or ``application/*+json``) among the comma-separated types."""
    if not content_type:
        return False
    return any(_JSON_MEDIA.match(part) for part in content_type.split(","))


def _json_value(value: str, json_type: str | None) -> Any:
    if json_type == "number":
        try:
            number = float(value)
        except ValueError:
            return _Missing
        return (
            int(number)
            if number.is_integer() and "." not in value and "e" not in value.lower()
            else number
        )
    if json_type == "boolean":
        return value == "true"
    return value


def _values(record: ValuesRecord) -> tuple[tuple[str, Any], ...]:
    out = []
    for i, pair in enumerate(record.json):
        name, value = split_pair(pair)
        if value is None:
            continue
        json_type = record.json_types[i] if i < len(record.json_types) else None
        converted = _json_value(value, json_type)
        if converted is not _Missing:
            out.append((name, converted))
    return tuple(out)


def _header_ops(pairs: Sequence[str]) -> tuple[tuple[str, str | None], ...]:
    """Pairs whose names the proxy lets plugins set (others are skipped, with a warning)."""
    out = []
    for pair in pairs:
        name, value = split_pair(pair)
        if not _TOKEN.match(name) or name.lower() in _ENGINE_OWNED:
            _log.warning("response-transformer: header %r cannot be changed; ignored", name)
            continue
        if value is not None and re.search(r"[\r\n\x00]", value):
            _log.warning("response-transformer: value of header %r has CR/LF; ignored", name)
            continue
        out.append((name, value))
    return tuple(out)


def _append(old: Any, value: Any) -> Any:
    if isinstance(old, str):
        return [old, value]
    if isinstance(old, list):
        old.append(value)
        return old
    return [value]


class Handler(PluginHandler):
    name = "response-transformer"
    PRIORITY = 800
    VERSION = "3.9.1"
    buffer_limit = BODY_BUFFER_LIMIT

    def __new__(cls, config: Config, instance: PluginInstance, env: CompileEnv) -> Handler:
        c = config
        body_ops = c.remove.json or c.rename.json or c.replace.json or c.add.json or c.append.json
        chosen = _JsonBodyHandler if body_ops and cls is Handler else cls
        return super().__new__(chosen)

    def __init__(self, config: Config, instance: PluginInstance, env: CompileEnv) -> None:
        super().__init__(config, instance, env)
        c = config
        self.h_remove = tuple(n for n, _ in _header_ops(c.remove.headers))
        self.h_rename = _header_ops(c.rename.headers)
        self.h_replace = _header_ops(c.replace.headers)
        self.h_add = _header_ops(c.add.headers)
        self.h_append = _header_ops(c.append.headers)
        self.j_remove = tuple(c.remove.json)
        self.j_rename = tuple(
            (old, new) for old, new in (split_pair(p) for p in c.rename.json) if new is not None
        )
        self.j_replace = _values(c.replace)
        self.j_add = _values(c.add)
        self.j_append = _values(c.append)
        self.key = f"response-transformer:{instance.id}"

    def response(self, ctx: RequestContext) -> None:
        for name in self.h_remove:
            ctx.clear_response_header(name)
        if self.h_rename:
            current = ctx.response_headers()
            for old, new in self.h_rename:
                values = current.get(old.lower())
                if values is None or new is None:
                    continue
                kept = list(values)
                ctx.clear_response_header(old)
                ctx.set_response_header(new, kept[0])
                for extra in kept[1:]:
                    ctx.add_response_header(new, extra)
        for name, value in self.h_replace:
            if value is not None and ctx.response_header(name) is not None:
                ctx.set_response_header(name, value)
        for name, value in self.h_add:
            if value is not None and ctx.response_header(name) is None:
                ctx.set_response_header(name, value)
        for name, value in self.h_append:
            if value is not None:
                ctx.add_response_header(name, value)

    def transform(self, raw: bytes) -> bytes | None:
        """The transformed JSON body, or None to send ``raw`` as it is."""
        try:
            doc = json.loads(raw)
        except (ValueError, RecursionError):
            _log.warning("response-transformer: body transform failed: failed parsing json body")
            return None
        if not isinstance(doc, dict):
            return None
        for name in self.j_remove:
            doc.pop(name, None)
        for old, new in self.j_rename:
            if old in doc:
                doc[new] = doc.pop(old)
        for name, value in self.j_replace:
            if name in doc and doc[name] is not False:
                doc[name] = value
        for name, value in self.j_add:
            if name not in doc or doc[name] is False:
                doc[name] = value
        for name, value in self.j_append:
            doc[name] = _append(doc.get(name), value)
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


class _JsonBodyHandler(Handler):
    """The same plugin with JSON body operations: buffers JSON responses to transform them."""

    def response(self, ctx: RequestContext) -> None:
        super().response(ctx)
        if is_json(ctx.response_header("content-type")):
            ctx.shared[self.key] = []

    def body(self, ctx: RequestContext, chunk: bytes, eof: bool) -> bytes:
        pieces: list[bytes] | None = ctx.shared.get(self.key)
        if pieces is None:
            return chunk
        if chunk:
            pieces.append(chunk)
            ctx.shared[self.key + ":size"] = size = ctx.shared.get(self.key + ":size", 0) + len(
                chunk
            )
            if size > self.buffer_limit:  # too big to transform: let it through as it is
                ctx.shared[self.key] = None
                return b"".join(pieces)
        if not eof:
            return b""
        ctx.shared[self.key] = None
        raw = b"".join(pieces)
        new = self.transform(raw)
        return raw if new is None else new
