"""Event gateway storage: the ``EventLog`` contract and its embedded and Kafka backends."""

from meshgate.events.api import (
    Acks,
    ConsumedRecord,
    EventLog,
    FetchResult,
    GroupMember,
    OffsetReset,
    ProduceRecord,
    RecordMetadata,
    TopicInfo,
)
from meshgate.events.errors import (
    BrokerUnavailable,
    EventLogError,
    OffsetOutOfRange,
    RecordTooLarge,
    TopicAlreadyExists,
    UnknownPartition,
    UnknownTopic,
)
from meshgate.events.factory import open_event_log

__all__ = [
    "Acks",
    "BrokerUnavailable",
    "ConsumedRecord",
    "EventLog",
    "EventLogError",
    "FetchResult",
    "GroupMember",
    "OffsetOutOfRange",
    "OffsetReset",
    "ProduceRecord",
    "RecordMetadata",
    "RecordTooLarge",
    "TopicAlreadyExists",
    "TopicInfo",
    "UnknownPartition",
    "UnknownTopic",
    "open_event_log",
]
