"""Errors every ``EventLog`` backend raises, so callers (the HTTP event API) map them once.

HTTP mapping the event gateway uses: ``UnknownTopic`` → 404, ``RecordTooLarge`` → 413,
``BrokerUnavailable`` → 503 with ``Retry-After``, ``OffsetOutOfRange`` → 416/400, anything else
``EventLogError`` → 502/500.
"""

from __future__ import annotations


class EventLogError(Exception):
    """Base of every event-log failure; on produce it means "not known to be stored"."""


class UnknownTopic(EventLogError):
    """The topic does not exist (and auto-creation is off)."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        super().__init__(f"unknown topic {topic!r}")


class TopicAlreadyExists(EventLogError):
    """``create_topic`` for a name that is taken."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        super().__init__(f"topic {topic!r} already exists")


class InvalidTopic(EventLogError):
    """A topic name or topic configuration that the log refuses."""


class UnknownPartition(EventLogError):
    """A partition number outside the topic's partitions."""

    def __init__(self, topic: str, partition: int) -> None:
        self.topic = topic
        self.partition = partition
        super().__init__(f"topic {topic!r} has no partition {partition}")


class RecordTooLarge(EventLogError):
    """A record bigger than the log's ``max_record_bytes``; nothing of the batch was written."""

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(f"record of {size} bytes exceeds the limit of {limit} bytes")


class OffsetOutOfRange(EventLogError):
    """A fetch offset beyond the end of the partition."""

    def __init__(self, topic: str, partition: int, offset: int, high_watermark: int) -> None:
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.high_watermark = high_watermark
        super().__init__(
            f"offset {offset} is beyond the end ({high_watermark}) of {topic}[{partition}]"
        )


class BrokerUnavailable(EventLogError):
    """The log cannot take or serve records now; try again after ``retry_after`` seconds."""

    def __init__(self, reason: str, retry_after: float = 1.0) -> None:
        self.reason = reason
        self.retry_after = retry_after
        super().__init__(reason)


class LogLocked(EventLogError):
    """Another process owns this embedded log directory."""
