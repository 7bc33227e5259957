"""The ``EventLog`` contract: topics of partitions of records, shared by every backend.

Backends: ``events.embedded`` (on-disk, one process, the default) and ``events.kafka`` (Apache
Kafka through librdkafka). Both honour the same rules, pinned by tests/events contract tests:

* ``produce`` returns only once every record is durable (embedded: fsynced; kafka: acknowledged
  by the broker with ``acks=all``). An exception means "not known to be stored" — never success
  for a record that is not. Records of one call may land in several partitions; metadata comes
  back in input order.
* Partitioning: an explicit ``partition`` wins; else a keyed record goes to
  ``murmur2(key) % partitions`` (Kafka's default partitioner, so Java/kcat producers agree);
  keyless records of one call stick to one partition, the next call takes the next partition.
* ``fetch`` returns records with offset ≥ the given one (offsets below the log start are read
  from the log start), at least one record even if larger than ``max_bytes``, and long-polls up
  to ``max_wait`` seconds when there is nothing yet. An offset past the end raises
  ``OffsetOutOfRange``; the end itself (the high watermark) is a valid position to wait at.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import TYPE_CHECKING, Literal, NamedTuple, Protocol, runtime_checkable

if TYPE_CHECKING:
    import asyncio

Acks = Literal["all", "leader", "none"]
OffsetReset = Literal["earliest", "latest"]
Headers = Sequence[tuple[str, bytes]]

DEFAULT_MAX_RECORD_BYTES = 1024 * 1024


class ProduceRecord(NamedTuple):  # a tuple: made per record, a frozen dataclass costs 2-3x
    """One record to write; ``timestamp_ms=None`` means "now" (create time)."""

    key: bytes | None = None
    value: bytes | None = None
    headers: Headers = ()
    timestamp_ms: int | None = None


class RecordMetadata(NamedTuple):  # a tuple, like ProduceRecord
    """Where a produced record was stored (``offset`` is -1 when produced with ``acks="none"``)."""

    topic: str
    partition: int
    offset: int
    timestamp: int


@dataclass(frozen=True, slots=True)
class ConsumedRecord:
    """A stored record as read back."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class FetchResult:
    """Records of one partition from an offset, with the partition's bounds at read time."""

    records: list[ConsumedRecord]
    high_watermark: int
    log_start_offset: int


@dataclass(frozen=True, slots=True)
class TopicInfo:
    """A topic's partition count and its explicitly set configuration (Kafka key names)."""

    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


def record_size(key: bytes | None, value: bytes | None, headers: Headers) -> int:
    """Payload bytes of a record, the figure compared with ``max_record_bytes``."""
    size = (len(key) if key else 0) + (len(value) if value else 0)
    for name, header_value in headers:
        size += len(name.encode()) + len(header_value)
    return size


_KEY_OF, _VALUE_OF, _HEADERS_OF = itemgetter(0), itemgetter(1), itemgetter(2)


def records_fit(records: Sequence[ProduceRecord], limit: int) -> bool:
    """True when no record can exceed ``limit`` (``record_size``): no headers, and the longest
    key plus the longest value fit. False means "look at each record" (one may still fit).
    Runs in C loops: a batch's check without a Python step per record."""
    if len(records) == 1:
        key, value, headers, _ = records[0]
        return not headers and len(key or b"") + len(value or b"") <= limit
    if any(map(_HEADERS_OF, records)):
        return False
    longest_value = max(map(len, filter(None, map(_VALUE_OF, records))), default=0)
    if longest_value > limit:
        return False
    longest_key = max(map(len, filter(None, map(_KEY_OF, records))), default=0)
    return longest_key + longest_value <= limit


def record_keys(records: Sequence[ProduceRecord]) -> list[bytes | None]:
    return list(map(_KEY_OF, records))


class GroupMember(Protocol):
    """One member of a consumer group: gets a share of the partitions, reads and commits them.

    Members of the same group split the partitions of the subscribed topics with no overlap
    (the assignment changes when members join or leave). ``poll`` reads from the assigned
    partitions starting at the group's committed offsets (or ``auto_offset_reset`` when none);
    ``commit`` stores the positions after everything ``poll`` returned so far.
    """

    @property
    def group(self) -> str: ...

    def assignment(self) -> list[tuple[str, int]]: ...

    async def poll(self, max_records: int = 500, max_wait: float = 1.0) -> list[ConsumedRecord]: ...

    async def commit(self) -> None: ...

    async def leave(self) -> None: ...


class EventLog(Protocol):
    """Topics of append-only partitions; see the module docstring for the guarantees."""

    async def produce(
        self,
        topic: str,
        records: Sequence[ProduceRecord],
        *,
        partition: int | None = None,
        acks: Acks = "all",
        timeout: float = 30.0,
    ) -> list[RecordMetadata]: ...

    async def fetch(
        self,
        topic: str,
        partition: int,
        offset: int,
        *,
        max_records: int = 500,
        max_bytes: int = 1024 * 1024,
        max_wait: float = 0.0,
    ) -> FetchResult: ...

    async def offsets_for_time(self, topic: str, partition: int, timestamp_ms: int) -> int:
        """First offset whose timestamp is ≥ ``timestamp_ms``, or the end when there is none."""
        ...

    async def earliest(self, topic: str, partition: int) -> int: ...

    async def latest(self, topic: str, partition: int) -> int:
        """The high watermark: the offset the next record will get."""
        ...

    async def commit(self, group: str, offsets: Mapping[tuple[str, int], int]) -> None:
        """Store ``{(topic, partition): next offset to read}`` for ``group``."""
        ...

    async def committed(self, group: str, topic: str) -> dict[int, int]:
        """``{partition: offset}`` committed by ``group`` for ``topic`` (missing = none)."""
        ...

    async def create_topic(
        self, name: str, partitions: int = 1, config: Mapping[str, str] | None = None
    ) -> TopicInfo: ...

    async def describe_topic(self, name: str) -> TopicInfo: ...

    async def list_topics(self) -> list[str]: ...

    async def delete_topic(self, name: str) -> None: ...

    async def join_group(
        self, group: str, topics: Sequence[str], *, auto_offset_reset: OffsetReset = "earliest"
    ) -> GroupMember: ...

    async def close(self) -> None: ...


@runtime_checkable
class ProduceInto(Protocol):
    """A backend's optional fast path: ``produce`` without a coroutine, task or timer.

    ``produce_into`` checks and queues ``records`` at once and returns True; ``future`` later
    gets the metadata (input order) once the records are stored with ``acks``, or the
    ``EventLogError``. It returns False, having done nothing, when it cannot take this call
    (topic not known yet, records for several partitions, …): use ``produce``. Validation
    errors (record too large, unknown partition) are raised at once. The log never times the
    future out — the caller bounds its wait — and leaves a future that is already done (the
    caller stopped waiting) alone; its records are stored all the same.
    """

    def produce_into(
        self,
        future: asyncio.Future[list[RecordMetadata]],
        topic: str,
        records: Sequence[ProduceRecord],
        *,
        partition: int | None = None,
        acks: Acks = "all",
    ) -> bool: ...
