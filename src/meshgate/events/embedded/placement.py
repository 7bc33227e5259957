"""Where the embedded log puts produced records: size checks, the partition of each record,
and the tuple a record is queued as for the group committer."""

from __future__ import annotations

from collections.abc import Sequence

from meshgate.events.api import ProduceRecord, TopicInfo, record_keys, record_size, records_fit
from meshgate.events.embedded.partition import PendingRecord
from meshgate.events.errors import RecordTooLarge, UnknownPartition
from meshgate.events.partitioner import StickyPartitioner, choose_partitions


def place_records(
    info: TopicInfo,
    records: Sequence[ProduceRecord],
    partition: int | None,
    max_record_bytes: int,
    sticky: StickyPartitioner,
) -> list[int]:
    """Each record's partition, after checking the partition number and record sizes
    (the topic's ``max.message.bytes`` over the log's default)."""
    if partition is not None and not 0 <= partition < info.partitions:
        raise UnknownPartition(info.name, partition)
    limit = int(info.config.get("max.message.bytes", max_record_bytes))
    if len(records) <= 8 or not records_fit(records, limit):
        for record in records:
            size = record_size(record.key, record.value, record.headers)
            if size > limit:
                raise RecordTooLarge(size, limit)
    if partition is not None:
        return [partition] * len(records)
    return choose_partitions(record_keys(records), info.partitions, partition, sticky)


def pending_record(record: ProduceRecord) -> PendingRecord:
    return (record.key, record.value, record.headers, record.timestamp_ms)
