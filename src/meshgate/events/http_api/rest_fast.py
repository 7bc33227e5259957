"""Typed readers for the usual REST produce bodies: records straight from msgspec Structs.

The shapes nearly every client sends — v3 ``{"value": {"type": "JSON", "data": X}}`` documents
(one, or a stream of them) and v2 ``{"records": [{"key"?, "value"?}, ...]}`` — are decoded by
msgspec into Structs that admit exactly those shapes (the checks run in C, no dict per record),
and each record is built once as a ``ProduceRecord``. Anything else (headers, partitions,
timestamps, another v3 type, a lone surrogate, bad JSON, too many records...) reads as None: the
general readers in ``rest_bodies`` then decide, so what is stored and every error text stay
theirs. What a typed reader returns equals what the general reader gives for the same body
(tests/events_http pin it with generated bodies). Sans-io.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import repeat
from typing import Any, Literal

import msgspec

from meshgate.events.api import ProduceRecord
from meshgate.events.http_api.b64 import b64decode
from meshgate.events.http_api.rest_bodies import MAX_RECORDS, EmbeddedFormat

_encode = msgspec.json.Encoder().encode  # json_fast.compact for what msgspec itself decoded
_new_tuple = tuple.__new__  # a NamedTuple built with no Python __new__ frame
_UNWRITABLE = (ValueError, TypeError, OverflowError, RecursionError)


# gc=False: decoded JSON holds no reference cycles, and these live for one request
class _JsonData(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    type: Literal["JSON"]
    data: Any


class _V3JsonValue(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    value: _JsonData


_V3_JSON = msgspec.json.Decoder(_V3JsonValue)


def v3_json_values(body: bytes) -> list[ProduceRecord] | None:
    """The records of a v3 body whose every document is ``{"value": {"type": "JSON", "data":
    X}}`` (whitespace between documents, as the general reader takes it); None otherwise."""
    try:
        docs = _V3_JSON.decode_lines(body)
    except (msgspec.DecodeError, ValueError, RecursionError):  # the general path decides
        return None
    if not docs or len(docs) > MAX_RECORDS:
        return None
    try:
        return _keyless([_encode(doc.value.data) for doc in docs])
    except _UNWRITABLE:  # not seen with what msgspec read; the general path decides then
        return None


class _V2Json(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    key: Any = None
    value: Any = None


class _V2Text(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    key: str | None = None
    value: str | None = None


class _V2JsonBody(msgspec.Struct, gc=False):
    records: list[_V2Json]
    key_schema: None = None
    value_schema: None = None
    key_schema_id: None = None
    value_schema_id: None = None


class _V2TextBody(msgspec.Struct, gc=False):
    records: list[_V2Text]
    key_schema: None = None
    value_schema: None = None
    key_schema_id: None = None
    value_schema_id: None = None


_V2_JSON = msgspec.json.Decoder(_V2JsonBody)
_V2_TEXT = msgspec.json.Decoder(_V2TextBody)


def v2_records(body: bytes, fmt: EmbeddedFormat) -> list[ProduceRecord] | None:
    """The records of a v2 body whose records hold only ``key`` and ``value``; None otherwise."""
    try:
        doc = (_V2_JSON if fmt == "json" else _V2_TEXT).decode(body)
    except (msgspec.DecodeError, ValueError, RecursionError):  # the general path decides
        return None
    items = doc.records
    if not items or len(items) > MAX_RECORDS:
        return None
    convert: Callable[[Any], bytes] = (
        _encode if fmt == "json" else str.encode if fmt == "string" else b64decode
    )  # C calls but for base64
    try:
        values = [None if (v := item.value) is None else convert(v) for item in items]
        keys = [item.key for item in items]
        if keys.count(None) == len(keys):
            return _keyless(values)
        keys = [None if k is None else convert(k) for k in keys]
    except _UNWRITABLE:  # ValueError: not base64; the general reader words it
        return None
    return list(map(_new_tuple, repeat(ProduceRecord), zip(keys, values, repeat(()),
                                                             repeat(None))))  # fmt: skip


def _keyless(values: list[bytes | None]) -> list[ProduceRecord]:
    return list(map(_new_tuple, repeat(ProduceRecord), zip(repeat(None), values, repeat(()),
                                                             repeat(None))))  # fmt: skip
