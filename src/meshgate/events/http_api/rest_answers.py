"""REST Proxy produce answers for stored records, written straight to bytes.

The same bytes ``json.dumps`` writes for ``rest_bodies.v2_response`` (every record stored) and
``rest_bodies.v3_report``, without a dict per record: a batch of 100 records answered with
dicts and ``json.dumps`` cost as much as parsing the batch. ``V3Reports.json_values`` writes a
whole batch of JSON values with one prepared format (cluster and topic filled in). Sans-io.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from operator import itemgetter

from meshgate.events.api import ProduceRecord, RecordMetadata
from meshgate.events.http_api.rest_bodies import V3Record, iso_time

_V2_OFFSET = b'{"partition": %d, "offset": %d, "error_code": null, "error": null}'
_V2_HEAD = b'{"offsets": ['
_V2_TAIL = b'], "key_schema_id": null, "value_schema_id": null}'
_V3_REPORT = (
    b'{"error_code": 200, "cluster_id": %b, "topic_name": %b, "partition_id": %d, '
    b'"offset": %d, "timestamp": %b, "key": %b, "value": %b}'
)
_V3_DATA = b'{"type": %b, "size": %d}'
_V3_JSON_VALUE_TAIL = (
    b'"partition_id": %d, "offset": %d, "timestamp": %b, "key": null, '
    b'"value": {"type": "JSON", "size": %d}}'
)
_TIMESTAMP_OF = itemgetter(3)
_VALUE_OF = itemgetter(1)


def v2_stored(metas: Sequence[RecordMetadata]) -> bytes:
    """``json.dumps(v2_response(...))`` for records that were all stored."""
    offsets = [_V2_OFFSET % (partition, offset) for _, partition, offset, _ in metas]
    return _V2_HEAD + b", ".join(offsets) + _V2_TAIL


class V3Reports:
    """``json.dumps(v3_report(meta, record, cluster_id))`` as bytes; JSON strings cached."""

    def __init__(self, cluster_id: str) -> None:
        self.cluster = _json(cluster_id)
        self._strings: dict[str, bytes] = {}
        self._json_value_formats: dict[str, bytes] = {}

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

    def json_values(
        self, metas: Sequence[RecordMetadata], records: Sequence[ProduceRecord]
    ) -> bytes:
        """The reports of keyless records that all have a JSON value, never None (what
        ``rest_fast.v3_json_values`` reads), all of one topic: ``report`` for each, joined,
        written with one format per record."""
        if not metas:
            return b""
        template = self._json_value_format(metas[0].topic)
        if len(metas) == 1:
            _, partition, offset, stamp = metas[0]
            return template % (partition, offset, b'"%b"' % iso_time(stamp).encode(),
                               len(records[0][1] or b""))  # fmt: skip
        stamp_of = {stamp: b'"%b"' % iso_time(stamp).encode()
                    for stamp in set(map(_TIMESTAMP_OF, metas))}  # fmt: skip
        sizes = map(len, map(_VALUE_OF, records))
        return b"".join([
            template % (partition, offset, stamp_of[stamp], size)
            for (_, partition, offset, stamp), size in zip(metas, sizes, strict=True)
        ])  # fmt: skip

    def _json_value_format(self, topic: str) -> bytes:
        found = self._json_value_formats.get(topic)
        if found is None:
            if len(self._json_value_formats) > 1024:
                self._json_value_formats.clear()
            head = b'{"error_code": 200, "cluster_id": %b, "topic_name": %b, ' % (
                self.cluster,
                self._string(topic),
            )
            found = head.replace(b"%", b"%%") + _V3_JSON_VALUE_TAIL  # the names' % are text
            self._json_value_formats[topic] = found
        return found


def _json(text: str) -> bytes:
    return json.dumps(text).encode()
