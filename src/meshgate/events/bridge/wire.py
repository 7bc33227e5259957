"""JSON shapes of the bridge's values: records, results, topic infos and errors, both ways.

Records are short lists, not objects, to keep frames small:
produce ``[key, value, headers, timestamp_ms]``, consumed
``[topic, partition, offset, timestamp_ms, key, value, headers]``, with bytes as base64 and
headers as ``[[name, value], ...]``. Errors carry their class name and constructor fields so the
client raises the same ``events.errors`` class with the same attributes.
"""

from __future__ import annotations

from typing import Any

from meshgate.events import errors
from meshgate.events.api import (
    ConsumedRecord,
    FetchResult,
    Headers,
    ProduceRecord,
    RecordMetadata,
    TopicInfo,
)
from meshgate.events.bridge.codec import decode_bytes, encode_bytes

# error class name → the constructor arguments it is rebuilt from (all are attributes)
_ERROR_FIELDS: dict[str, tuple[str, ...]] = {
    "UnknownTopic": ("topic",),
    "TopicAlreadyExists": ("topic",),
    "UnknownPartition": ("topic", "partition"),
    "RecordTooLarge": ("size", "limit"),
    "OffsetOutOfRange": ("topic", "partition", "offset", "high_watermark"),
    "BrokerUnavailable": ("reason", "retry_after"),
}
_MESSAGE_ONLY = ("EventLogError", "InvalidTopic", "LogLocked")


def headers_out(headers: Headers) -> list[list[str | None]]:
    return [[name, encode_bytes(value)] for name, value in headers]


def headers_in(wire: list[list[str]]) -> list[tuple[str, bytes]]:
    return [(name, decode_bytes(value) or b"") for name, value in wire]


def produce_record_out(record: ProduceRecord) -> list[Any]:
    return [
        encode_bytes(record.key),
        encode_bytes(record.value),
        headers_out(record.headers),
        record.timestamp_ms,
    ]


def produce_record_in(wire: list[Any]) -> ProduceRecord:
    key, value, headers, timestamp_ms = wire
    return ProduceRecord(decode_bytes(key), decode_bytes(value), headers_in(headers), timestamp_ms)


def metadata_out(metadata: RecordMetadata) -> list[Any]:
    return [metadata.topic, metadata.partition, metadata.offset, metadata.timestamp]


def metadata_in(wire: list[Any]) -> RecordMetadata:
    return RecordMetadata(*wire)


def consumed_out(record: ConsumedRecord) -> list[Any]:
    return [
        record.topic,
        record.partition,
        record.offset,
        record.timestamp_ms,
        encode_bytes(record.key),
        encode_bytes(record.value),
        headers_out(record.headers),
    ]


def consumed_in(wire: list[Any]) -> ConsumedRecord:
    topic, partition, offset, timestamp_ms, key, value, headers = wire
    return ConsumedRecord(
        topic,
        partition,
        offset,
        timestamp_ms,
        decode_bytes(key),
        decode_bytes(value),
        headers_in(headers),
    )


def fetch_result_out(result: FetchResult) -> list[Any]:
    return [
        [consumed_out(r) for r in result.records],
        result.high_watermark,
        result.log_start_offset,
    ]


def fetch_result_in(wire: list[Any]) -> FetchResult:
    records, high_watermark, log_start_offset = wire
    return FetchResult([consumed_in(r) for r in records], high_watermark, log_start_offset)


def topic_info_out(info: TopicInfo) -> list[Any]:
    return [info.name, info.partitions, dict(info.config)]


def topic_info_in(wire: list[Any]) -> TopicInfo:
    name, partitions, config = wire
    return TopicInfo(name, partitions, dict(config))


def offsets_out(offsets: dict[tuple[str, int], int]) -> list[list[Any]]:
    return [[topic, partition, offset] for (topic, partition), offset in offsets.items()]


def offsets_in(wire: list[list[Any]]) -> dict[tuple[str, int], int]:
    return {(topic, partition): offset for topic, partition, offset in wire}


def error_out(exc: BaseException) -> dict[str, Any]:
    """An exception as ``{"type", "message", "fields"}``; unknown kinds become EventLogError."""
    name = type(exc).__name__
    if isinstance(exc, errors.EventLogError) and name in _ERROR_FIELDS:
        fields = {f: getattr(exc, f) for f in _ERROR_FIELDS[name]}
        return {"type": name, "message": str(exc), "fields": fields}
    if isinstance(exc, errors.EventLogError) and name in _MESSAGE_ONLY:
        return {"type": name, "message": str(exc), "fields": {}}
    return {"type": "EventLogError", "message": f"{name}: {exc}", "fields": {}}


def error_in(wire: dict[str, Any]) -> errors.EventLogError:
    """The exception ``error_out`` described (EventLogError for a type it does not know)."""
    name = wire.get("type", "")
    message = str(wire.get("message", ""))
    fields = wire.get("fields") or {}
    cls = getattr(errors, name, None)
    if name in _ERROR_FIELDS and isinstance(cls, type) and issubclass(cls, errors.EventLogError):
        try:
            built: errors.EventLogError = cls(**{f: fields[f] for f in _ERROR_FIELDS[name]})
        except (KeyError, TypeError):
            return errors.EventLogError(message)
        return built
    if name in _MESSAGE_ONLY and isinstance(cls, type) and issubclass(cls, errors.EventLogError):
        made: errors.EventLogError = cls(message)
        return made
    return errors.EventLogError(message)
