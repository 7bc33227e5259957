"""Confluent REST Proxy produce bodies, sans-io: v2 ``POST /topics/{t}`` and v3 ``.../records``.

v2: ``Content-Type: application/vnd.kafka[.<format>].v2+json`` with format ``json``
(embedded JSON: key/value are any JSON, stored as compact JSON text), ``binary`` (base64
strings; the default when the format is omitted) or ``string`` (Strimzi's text: UTF-8
strings). Body ``{"records": [{"key"?, "value", "partition"?, "headers"?}]}``; ``headers`` is
Strimzi's ``[{"key", "value" (base64)}]``. Schema formats (avro, jsonschema, protobuf) are
refused with 415: no schema registry here.

v3: ``application/json`` body ``{"partition_id"?, "headers"?: [{"name", "value" (base64)}],
"key"?: {"type", "data"}, "value"?: {"type", "data"}, "timestamp"?}`` with ``type`` in BINARY
(base64), JSON (default) or STRING. Several records may be concatenated (Confluent's
streaming mode); each gets its own delivery report.

Every violation raises ``BodyError`` (HTTP 400, or ``status`` 415 for a media type).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple

from meshgate.events.api import RecordMetadata
from meshgate.events.http_api import json_fast
from meshgate.events.http_api.b64 import b64decode

EmbeddedFormat = Literal["json", "binary", "string"]
_SCHEMA_FORMATS = frozenset({"avro", "jsonschema", "protobuf"})
MAX_RECORDS = 10_000


class BodyError(ValueError):
    def __init__(self, message: str, status: int = 400, error_code: int = 40001) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code


_new_tuple = tuple.__new__  # a NamedTuple built with no Python __new__ frame: 5x cheaper


class RestRecord(NamedTuple):  # a tuple: built per record, a frozen dataclass costs more
    key: bytes | None
    value: bytes | None
    partition: int | None = None
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp_ms: int | None = None


def v2_format(content_type: str | None) -> EmbeddedFormat:
    """The embedded format a v2 ``Content-Type`` names (415 for anything else)."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if not media.startswith("application/vnd.kafka.") or not media.endswith(".v2+json"):
        raise BodyError(f"unsupported Content-Type {media or '(none)'!r}", 415, 41501)
    middle = media[len("application/vnd.kafka.") : -len(".v2+json")]
    if middle in ("", "v2"):  # application/vnd.kafka.v2+json: binary assumed
        return "binary"
    if middle == "text":
        return "string"
    if middle in ("json", "binary", "string"):
        return middle  # type: ignore[return-value]
    if middle in _SCHEMA_FORMATS:
        raise BodyError(f"embedded format {middle!r} needs a schema registry", 415, 41502)
    raise BodyError(f"unknown embedded format {middle!r}", 415, 41501)


def _load_json(body: bytes) -> Any:
    try:
        return json_fast.loads(body)
    except ValueError as exc:
        raise BodyError(f"body is not valid JSON: {exc}", error_code=40002) from exc


def _embedded(data: Any, fmt: EmbeddedFormat, index: int, field: str) -> bytes | None:
    if data is None:
        return None
    if fmt == "json":
        return json_fast.compact(data)
    what = f"records[{index}].{field}"
    if not isinstance(data, str):
        raise BodyError(f"{what} must be a {'base64 ' if fmt == 'binary' else ''}string")
    if fmt == "string":
        return data.encode("utf-8")
    try:
        return b64decode(data)
    except ValueError as exc:
        raise BodyError(f"{what} is not valid base64") from exc


def _partition(value: Any, what: str) -> int | None:
    if value is None:
        return None
    if type(value) is not int or value < 0:
        raise BodyError(f"{what} must be a non-negative integer")
    return value


def _headers(items: Any, name_field: str, what: str) -> tuple[tuple[str, bytes], ...]:
    if items is None:
        return ()
    if not isinstance(items, list):
        raise BodyError(f"{what} must be a list")
    out: list[tuple[str, bytes]] = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get(name_field), str):
            raise BodyError(f"{what}[{i}] needs a string {name_field!r}")
        raw = item.get("value")
        if raw is None:
            out.append((item[name_field], b""))
            continue
        if not isinstance(raw, str):
            raise BodyError(f"{what}[{i}].value must be a base64 string")
        try:
            out.append((item[name_field], b64decode(raw)))
        except ValueError as exc:
            raise BodyError(f"{what}[{i}].value is not valid base64") from exc
    return tuple(out)


def parse_v2_produce(body: bytes, fmt: EmbeddedFormat) -> list[RestRecord]:
    doc = _load_json(body)
    if not isinstance(doc, dict) or not isinstance(doc.get("records"), list):
        raise BodyError('body must be an object with a "records" list', error_code=42201)
    for schema_field in ("key_schema", "value_schema", "key_schema_id", "value_schema_id"):
        if doc.get(schema_field) is not None:
            raise BodyError(f"{schema_field} is not supported (no schema registry)", 422, 42201)
    items = doc["records"]
    if not items:
        raise BodyError("records must not be empty", error_code=42202)
    if len(items) > MAX_RECORDS:
        raise BodyError(f"at most {MAX_RECORDS} records per request")
    if fmt != "json":
        return [_v2_record(item, i, fmt) for i, item in enumerate(items)]
    records: list[RestRecord] = []
    for i, item in enumerate(items):
        value = item.get("value") if type(item) is dict and len(item) == 1 else None
        if value is not None:  # the common {"value": ...}: nothing else to check
            records.append(_new_tuple(RestRecord, (None, json_fast.compact(value), None, (), None)))
        else:
            records.append(_v2_record(item, i, fmt))
    return records


_V2_FIELDS = frozenset({"key", "value", "partition", "headers", "timestamp"})


def _v2_record(item: Any, i: int, fmt: EmbeddedFormat) -> RestRecord:
    if not isinstance(item, dict):
        raise BodyError(f"records[{i}] must be an object")
    if not item.keys() <= _V2_FIELDS:
        raise BodyError(f"records[{i}] has unknown fields {sorted(item.keys() - _V2_FIELDS)}")
    value = _embedded(item.get("value"), fmt, i, "value")
    if len(item) == 1 and value is not None:  # the common {"value": ...}: nothing else to check
        return RestRecord(None, value)
    return RestRecord(
        key=_embedded(item.get("key"), fmt, i, "key"),
        value=value,
        partition=_partition(item.get("partition"), f"records[{i}].partition"),
        headers=_headers(item.get("headers"), "key", f"records[{i}].headers"),
        timestamp_ms=_timestamp(item.get("timestamp"), f"records[{i}].timestamp"),
    )


class V2Outcome(NamedTuple):
    """One record's result: stored (``metadata``) or failed (``error`` text, ``retriable``)."""

    metadata: RecordMetadata | None = None
    error: str | None = None
    retriable: bool = False


def v2_response(outcomes: Sequence[V2Outcome]) -> dict[str, Any]:
    offsets: list[dict[str, Any]] = []
    for outcome in outcomes:
        if outcome.metadata is not None:
            offsets.append({"partition": outcome.metadata.partition,
                            "offset": outcome.metadata.offset,
                            "error_code": None, "error": None})  # fmt: skip
        else:
            offsets.append({"partition": None, "offset": None,
                            "error_code": 2 if outcome.retriable else 1,
                            "error": outcome.error})  # fmt: skip
    return {"offsets": offsets, "key_schema_id": None, "value_schema_id": None}


# --------------------------------------------------------------------------- v3


def _v3_data(item: Any, record: str, field: str) -> tuple[bytes | None, str]:
    if item is None:
        return None, "JSON"
    what = f"{record}.{field}"
    if not isinstance(item, dict):
        raise BodyError(f"{what} must be an object with type and data")
    kind = item.get("type", "JSON")
    if not item.keys() <= _V3_DATA_FIELDS:
        unknown = sorted(item.keys() - _V3_DATA_FIELDS)
        raise BodyError(f"{what} has unsupported fields {unknown} (no schema registry)")
    if not isinstance(kind, str) or kind.upper() not in ("BINARY", "JSON", "STRING"):
        raise BodyError(f"{what}.type must be BINARY, JSON or STRING")
    kind = kind.upper()
    data = item.get("data")
    if data is None and kind != "JSON":
        return None, kind
    if kind == "JSON":
        if "data" not in item:
            return None, kind
        return json_fast.compact(data), kind
    if not isinstance(data, str):
        raise BodyError(f"{what}.data must be a string for type {kind}")
    if kind == "STRING":
        return data.encode("utf-8"), kind
    try:
        return b64decode(data), kind
    except ValueError as exc:
        raise BodyError(f"{what}.data is not valid base64") from exc


def _timestamp(value: Any, what: str) -> int | None:
    if value is None:
        return None
    if type(value) is int and value >= 0:
        return value
    if isinstance(value, str):
        try:
            return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)
        except ValueError:
            pass
    raise BodyError(f"{what} must be epoch milliseconds or an ISO 8601 date-time")


_DECODER = json.JSONDecoder(parse_constant=json_fast.refuse_constant, parse_float=json_fast.finite)
_SPACE = re.compile(r"\s*")  # what str.lstrip skips, without copying the rest of the text


def _skip_space(text: str, pos: int) -> int:
    found = _SPACE.match(text, pos)
    return found.end() if found else pos


class V3Record(NamedTuple):
    record: RestRecord
    value_type: str
    key_type: str


def parse_v3_records(body: bytes) -> list[V3Record]:
    """One record object, or several concatenated (streaming mode)."""
    lines = _one_per_line(body)
    if lines is not None:
        return [_v3_record(doc, i) for i, doc in enumerate(lines)]
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BodyError("body is not UTF-8") from exc
    docs: list[Any] = []
    pos = _skip_space(text, 0)
    while pos < len(text):
        try:
            doc, end = _DECODER.raw_decode(text, pos)
        except ValueError as exc:
            raise BodyError(f"body is not valid JSON: {exc}") from exc
        docs.append(doc)
        if len(docs) > MAX_RECORDS:
            raise BodyError(f"at most {MAX_RECORDS} records per request")
        pos = _skip_space(text, end)
    if not docs:
        raise BodyError("empty body")
    return [_v3_record(doc, i) for i, doc in enumerate(docs)]


def _one_per_line(body: bytes) -> list[Any] | None:
    """The documents of a body holding one per line (the usual stream), read with msgspec as
    one array (line breaks made commas); None when it is not that (a document over several
    lines, two on a line, blank lines, bad JSON...): then the general reader decides, and words
    the error.  A comma where a document breaks a line is never valid JSON, so a body that
    reads as that array holds exactly one document per line."""
    stripped = body.strip(b" \t\r\n")  # JSON whitespace only
    if not stripped:
        return None
    try:
        docs = json_fast.decode(b"[" + stripped.replace(b"\n", b",") + b"]")
    except (json_fast.DecodeError, ValueError):  # ValueError: not UTF-8, worded below
        return None
    if not isinstance(docs, list) or len(docs) > MAX_RECORDS:
        return None
    return docs


_V3_FIELDS = frozenset({"partition_id", "headers", "key", "value", "timestamp"})
_V3_DATA_FIELDS = frozenset({"type", "data"})


def _v3_record(doc: Any, index: int) -> V3Record:
    what = f"record {index}" if index else "record"
    if not isinstance(doc, dict):
        raise BodyError(f"{what} must be a JSON object")
    if not doc.keys() <= _V3_FIELDS:
        raise BodyError(f"{what} has unknown fields {sorted(doc.keys() - _V3_FIELDS)}")
    value_item = doc.get("value")
    if (
        len(doc) == 1
        and type(value_item) is dict
        and len(value_item) == 2
        and value_item.get("type") == "JSON"
        and "data" in value_item
    ):  # the common {"value": {"type": "JSON", "data": ...}}: nothing else to check
        text = json_fast.compact(value_item["data"])
        record = _new_tuple(RestRecord, (None, text, None, (), None))
        return _new_tuple(V3Record, (record, "JSON", "JSON"))
    key, key_type = _v3_data(doc.get("key"), what, "key")
    value, value_type = _v3_data(value_item, what, "value")
    rec = RestRecord(
        key=key,
        value=value,
        partition=_partition(doc.get("partition_id"), f"{what}.partition_id"),
        headers=_headers(doc.get("headers"), "name", f"{what}.headers"),
        timestamp_ms=_timestamp(doc.get("timestamp"), f"{what}.timestamp"),
    )
    return V3Record(rec, value_type, key_type)


def v3_report(meta: RecordMetadata, rec: V3Record, cluster_id: str = "meshgate") -> dict[str, Any]:
    stamp = iso_time(meta.timestamp)
    report: dict[str, Any] = {
        "error_code": 200,
        "cluster_id": cluster_id,
        "topic_name": meta.topic,
        "partition_id": meta.partition,
        "offset": meta.offset,
        "timestamp": stamp,
        "key": None,
        "value": None,
    }
    if rec.record.key is not None:
        report["key"] = {"type": rec.key_type, "size": len(rec.record.key)}
    if rec.record.value is not None:
        report["value"] = {"type": rec.value_type, "size": len(rec.record.value)}
    return report


def v3_error(status: int, message: str) -> dict[str, Any]:
    return {"error_code": status, "message": message}


def iso_time(timestamp_ms: int) -> str:
    """``2021-02-05T19:14:42.123Z`` for epoch milliseconds (the last one is remembered: the
    records of one batch mostly share their millisecond)."""
    global _last_iso
    stamp, text = _last_iso
    if stamp == timestamp_ms:
        return text
    moment = datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC)
    text = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    _last_iso = (timestamp_ms, text)
    return text


_last_iso: tuple[int | None, str] = (None, "")
