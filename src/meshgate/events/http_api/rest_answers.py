"""REST Proxy produce answers for stored records, written straight to bytes.

The same bytes ``json.dumps`` writes for ``rest_bodies.v2_response`` (every record stored) and
``rest_bodies.v3_report``, without a dict per record: a batch of 100 records answered with
dicts and ``json.dumps`` cost as much as parsing the batch. Sans-io.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from meshgate.events.api import RecordMetadata
from meshgate.events.http_api.rest_bodies import V3Record, iso_time

_V2_OFFSET = b'{"partition": %d, "offset": %d, "error_code": null, "error": null}'
_V2_HEAD = b'{"offsets": ['
_V2_TAIL = b'], "key_schema_id": null, "value_schema_id": null}'
_V3_REPORT = (
    b'{"error_code": 200, "cluster_id": %b, "topic_name": %b, "partition_id": %d, '
    b'"offset": %d, "timestamp": %b, "key": %b, "value": %b}'
)
_V3_DATA = b'{"type": %b, "size": %d}'


def v2_stored(metas: Sequence[RecordMetadata]) -> bytes:
    """``json.dumps(v2_response(...))`` for records that were all stored."""
    return _V2_HEAD + b", ".join([_V2_OFFSET % (m.partition, m.offset) for m in metas]) + _V2_TAIL


class V3Reports:
    """``json.dumps(v3_report(meta, record, cluster_id))`` as bytes; JSON strings cached."""

    def __init__(self, cluster_id: str) -> None:
        self.cluster = _json(cluster_id)
        self._strings: dict[str, bytes] = {}

    def _string(self, text: str) -> bytes:
        found = self._strings.get(text)
        if found is None:
            if len(self._strings) > 1024:
                self._strings.clear()
            found = self._strings[text] = _json(text)
        return found

    def report(self, meta: RecordMetadata, item: V3Record) -> bytes:
        rec = item.record
        key = value = b"null"
        if rec.key is not None:
            key = _V3_DATA % (self._string(item.key_type), len(rec.key))
        if rec.value is not None:
            value = _V3_DATA % (self._string(item.value_type), len(rec.value))
        stamp = b'"%b"' % iso_time(meta.timestamp).encode()  # digits, "-", ":", "T", ".", "Z"
        topic = self._string(meta.topic)
        return _V3_REPORT % (self.cluster, topic, meta.partition, meta.offset, stamp, key, value)


def _json(text: str) -> bytes:
    return json.dumps(text).encode()
