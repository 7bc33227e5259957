"""How a consumed record looks over HTTP (GET body, SSE ``data:``, WebSocket text frame).

    {"topic": "orders", "partition": 0, "offset": 41, "timestamp": 1700000000000,
     "key": "order-7", "key_encoding": "string",
     "value": {"id": 7}, "value_encoding": "json",
     "headers": [{"name": "trace", "value": "YWJj"}]}

* ``timestamp``: milliseconds since the epoch (the record's create/append time).
* ``key``: the UTF-8 text (``key_encoding: "string"``), base64 when not valid UTF-8
  (``"base64"``), ``null`` for no key (``key_encoding: null``).
* ``value`` by ``value_format``: ``json`` — the parsed JSON when the bytes are UTF-8 JSON
  (``value_encoding: "json"``), else base64 (``"base64"``); ``string`` — UTF-8 text
  (``"string"``) else base64; ``binary`` — always base64. ``null`` value → ``null``/``null``.
* ``headers``: in record order, repeated names kept; ``value`` is always base64 (header values
  are bytes; this keeps them exact — the v3 produce body uses the same shape).
"""

from __future__ import annotations

import json
from typing import Any, Literal

from meshgate.events.api import ConsumedRecord
from meshgate.events.http_api.b64 import b64encode

ValueFormat = Literal["json", "string", "binary"]


def _text_or_b64(data: bytes) -> tuple[str, str]:
    try:
        return data.decode("utf-8"), "string"
    except UnicodeDecodeError:
        return b64encode(data), "base64"


def render_value(value: bytes | None, value_format: ValueFormat) -> tuple[Any, str | None]:
    """``(value, value_encoding)`` as described in the module docstring."""
    if value is None:
        return None, None
    if value_format == "json":
        try:
            return json.loads(value), "json"
        except ValueError:  # UnicodeDecodeError is a ValueError too
            return b64encode(value), "base64"
    if value_format == "string":
        return _text_or_b64(value)
    return b64encode(value), "base64"


def render_record(record: ConsumedRecord, value_format: ValueFormat = "json") -> dict[str, Any]:
    key, key_encoding = (None, None) if record.key is None else _text_or_b64(record.key)
    value, value_encoding = render_value(record.value, value_format)
    return {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": record.timestamp_ms,
        "key": key,
        "key_encoding": key_encoding,
        "value": value,
        "value_encoding": value_encoding,
        "headers": [{"name": n, "value": b64encode(v)} for n, v in record.headers],
    }


def dumps(data: Any) -> str:
    """Compact JSON as sent on the wire."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)
