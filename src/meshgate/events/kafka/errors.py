"""Map librdkafka errors (``KafkaError`` codes) to the event log's errors."""

from __future__ import annotations

from typing import Any

from confluent_kafka import KafkaError, KafkaException

from meshgate.events.errors import (
    BrokerUnavailable,
    EventLogError,
    InvalidTopic,
    RecordTooLarge,
    TopicAlreadyExists,
    UnknownPartition,
    UnknownTopic,
)

_TOO_LARGE = {
    KafkaError.MSG_SIZE_TOO_LARGE,
    KafkaError.RECORD_LIST_TOO_LARGE,
    KafkaError.INVALID_MSG_SIZE,
}
_UNKNOWN_TOPIC = {KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC}
_INVALID_TOPIC = {
    KafkaError.TOPIC_EXCEPTION,
    KafkaError.INVALID_CONFIG,
    KafkaError.INVALID_PARTITIONS,
    KafkaError.INVALID_REPLICATION_FACTOR,
    KafkaError.POLICY_VIOLATION,
}
_UNAVAILABLE = {
    KafkaError._TRANSPORT,
    KafkaError._ALL_BROKERS_DOWN,
    KafkaError._MSG_TIMED_OUT,
    KafkaError._TIMED_OUT,
    KafkaError._TIMED_OUT_QUEUE,
    KafkaError._QUEUE_FULL,
    KafkaError._RESOLVE,
    KafkaError._WAIT_COORD,
    KafkaError._DESTROY,
    KafkaError.REQUEST_TIMED_OUT,
    KafkaError.NETWORK_EXCEPTION,
    KafkaError.BROKER_NOT_AVAILABLE,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.NOT_ENOUGH_REPLICAS,
    KafkaError.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.NOT_COORDINATOR,
    KafkaError.KAFKA_STORAGE_ERROR,
    KafkaError.THROTTLING_QUOTA_EXCEEDED,
}


def kafka_error_of(exc: BaseException) -> Any:
    """The ``KafkaError`` inside a ``KafkaException`` (or None)."""
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        return exc.args[0]
    return None


def map_error(
    error: Any,
    *,
    topic: str = "",
    partition: int = -1,
    size: int = -1,
    limit: int = -1,
    retry_after: float = 1.0,
) -> EventLogError:
    """An ``EventLogError`` for a ``KafkaError`` (or a ``KafkaException`` carrying one)."""
    if isinstance(error, BaseException):
        inner = kafka_error_of(error)
        if inner is None:
            return EventLogError(str(error))
        error = inner
    code = error.code()
    reason = f"kafka: {error.str()}"
    if code in _TOO_LARGE:
        return RecordTooLarge(size, limit)
    if code in _UNKNOWN_TOPIC:
        return UnknownTopic(topic)
    if code == KafkaError._UNKNOWN_PARTITION:
        return UnknownPartition(topic, partition)
    if code == KafkaError.TOPIC_ALREADY_EXISTS:
        return TopicAlreadyExists(topic)
    if code in _INVALID_TOPIC:
        return InvalidTopic(reason)
    if code in _UNAVAILABLE or error.retriable():
        return BrokerUnavailable(reason, retry_after)
    return EventLogError(reason)
