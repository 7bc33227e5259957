"""Topic admin, metadata and offset lookups for the Kafka backend, on librdkafka's AdminClient.

AdminClient calls return ``concurrent.futures`` that librdkafka resolves on its own thread;
they are awaited through ``asyncio.wrap_future``. Metadata requests (``list_topics``) are
blocking and run on the backend's admin executor. Partition counts are cached for a short TTL.
"""

from __future__ import annotations

import asyncio
import importlib
import time
from collections.abc import Mapping
from concurrent.futures import Executor
from typing import Any

from confluent_kafka import IsolationLevel, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from meshgate.events.api import TopicInfo
from meshgate.events.errors import BrokerUnavailable, UnknownTopic
from meshgate.events.kafka.errors import map_error

_PARTITION_CACHE_SECONDS = 30.0
_METADATA_POLL_SECONDS = 0.05
# re-exported without ``__all__``, so strict mypy refuses named imports; use them untyped
_kafka_admin: Any = importlib.import_module("confluent_kafka.admin")
_NO_SUCH_TOPIC = (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError.TOPIC_EXCEPTION)


class TopicAdmin:
    """Everything the backend asks the cluster that is not produce or fetch."""

    def __init__(self, config: dict[str, Any], executor: Executor, request_timeout: float):
        self._admin = AdminClient(config)
        self._executor = executor
        self.request_timeout = request_timeout
        self._partition_counts: dict[str, tuple[int, float]] = {}

    async def _await(self, future: Any, topic: str = "") -> Any:
        try:
            async with asyncio.timeout(self.request_timeout):
                return await asyncio.wrap_future(future)
        except TimeoutError:
            raise BrokerUnavailable(
                f"kafka did not answer within {self.request_timeout}s", retry_after=1.0
            ) from None
        except KafkaException as exc:
            raise map_error(exc, topic=topic) from None

    async def _metadata(self, topic: str | None) -> Any:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(
                self._executor,
                lambda: self._admin.list_topics(topic, timeout=self.request_timeout),
            )
        except KafkaException as exc:
            raise map_error(exc, topic=topic or "") from None

    def cached_partition_count(self, topic: str) -> int | None:
        """Partitions of ``topic`` if known and fresh, else None (no request made)."""
        cached = self._partition_counts.get(topic)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        return None

    async def partition_count(self, topic: str) -> int:
        """Partitions of ``topic`` (cached); ``UnknownTopic`` when it does not exist."""
        cached = self._partition_counts.get(topic)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        metadata = await self._metadata(topic)
        found = metadata.topics.get(topic)
        if found is None or found.error is not None:
            self._partition_counts.pop(topic, None)
            if found is not None and found.error.code() not in _NO_SUCH_TOPIC:
                raise map_error(found.error, topic=topic)
            raise UnknownTopic(topic)
        count = len(found.partitions)
        self._partition_counts[topic] = (count, time.monotonic() + _PARTITION_CACHE_SECONDS)
        return count

    async def create_topic(
        self, name: str, partitions: int, config: Mapping[str, str] | None
    ) -> TopicInfo:
        new_topic = _kafka_admin.NewTopic(
            name, num_partitions=partitions, config=dict(config or {})
        )
        futures = self._admin.create_topics(
            [new_topic],
            operation_timeout=self.request_timeout,
            request_timeout=self.request_timeout,
        )
        await self._await(futures[name], name)
        await self._until_led(name, partitions)
        self._partition_counts[name] = (partitions, time.monotonic() + _PARTITION_CACHE_SECONDS)
        return TopicInfo(name, partitions, dict(config or {}))

    async def _until_led(self, name: str, partitions: int) -> None:
        """Wait (bounded) until every partition of a new topic has a leader in the metadata."""
        for _ in range(int(self.request_timeout / _METADATA_POLL_SECONDS)):
            if _all_led((await self._metadata(name)).topics.get(name), partitions):
                return
            await asyncio.sleep(_METADATA_POLL_SECONDS)

    async def describe_topic(self, name: str) -> TopicInfo:
        partitions = await self.partition_count(name)
        resource = _kafka_admin.ConfigResource(_kafka_admin.ResourceType.TOPIC, name)
        futures = self._admin.describe_configs([resource], request_timeout=self.request_timeout)
        entries = await self._await(futures[resource], name)
        config = {
            key: str(entry.value)
            for key, entry in entries.items()
            if entry.source == _kafka_admin.ConfigSource.DYNAMIC_TOPIC_CONFIG.value
        }
        return TopicInfo(name, partitions, config)

    async def list_topics(self) -> list[str]:
        metadata = await self._metadata(None)
        return sorted(name for name in metadata.topics if not name.startswith("__"))

    async def delete_topic(self, name: str) -> None:
        """Delete, then wait (bounded) until the cluster metadata no longer lists the topic."""
        await self.partition_count(name)
        futures = self._admin.delete_topics(
            [name], operation_timeout=self.request_timeout, request_timeout=self.request_timeout
        )
        self._partition_counts.pop(name, None)
        await self._await(futures[name], name)
        for _ in range(int(self.request_timeout / _METADATA_POLL_SECONDS)):
            if name not in (await self._metadata(None)).topics:
                return
            await asyncio.sleep(_METADATA_POLL_SECONDS)

    async def list_offset(self, topic: str, partition: int, spec: Any) -> tuple[int, int]:
        """``(offset, timestamp)`` for an ``OffsetSpec`` (offset -1 when none matches)."""
        await self.partition_count(topic)
        key = TopicPartition(topic, partition)
        futures = self._admin.list_offsets(
            {key: spec},
            isolation_level=IsolationLevel.READ_UNCOMMITTED,
            request_timeout=self.request_timeout,
        )
        result = await self._await(futures[key], topic)
        return int(result.offset), int(result.timestamp)

    async def earliest(self, topic: str, partition: int) -> int:
        return (await self.list_offset(topic, partition, _kafka_admin.OffsetSpec.earliest()))[0]

    async def latest(self, topic: str, partition: int) -> int:
        return (await self.list_offset(topic, partition, _kafka_admin.OffsetSpec.latest()))[0]

    async def offset_for_time(self, topic: str, partition: int, timestamp_ms: int) -> int:
        offset, _ = await self.list_offset(
            topic, partition, _kafka_admin.OffsetSpec.for_timestamp(timestamp_ms)
        )
        if offset < 0:
            return await self.latest(topic, partition)
        return offset

    def forget(self, topic: str) -> None:
        self._partition_counts.pop(topic, None)


def _all_led(topic: Any, partitions: int) -> bool:
    """Whether topic metadata shows ``partitions`` partitions, each with a leader."""
    if topic is None or topic.error is not None or len(topic.partitions) != partitions:
        return False
    return all(p.leader >= 0 for p in topic.partitions.values())
