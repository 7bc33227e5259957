"""``KafkaEventLog``: the ``EventLog`` contract on Apache Kafka through librdkafka.

Durability: the default producer is idempotent with ``acks=all``; ``produce`` returns when the
broker acknowledged every record, and raises (``BrokerUnavailable`` when the cluster cannot be
reached in ``timeout``) otherwise — a timed-out record may still be delivered later by librdkafka
within ``delivery_timeout``, but it is never reported as stored. ``acks="leader"``/``"none"``
use separate, non-idempotent producers made on first use.

Partitions are chosen here (``events.partitioner``: murmur2 like Java for keyed records), not
by librdkafka, whose default partitioner differs. Topics are never created by a metadata
request (``allow.auto.create.topics=false``): with ``auto_create_topics`` the backend creates a
missing topic itself with ``default_partitions``; otherwise it raises ``UnknownTopic``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

from meshgate.events.api import (
    DEFAULT_MAX_RECORD_BYTES,
    Acks,
    FetchResult,
    GroupMember,
    OffsetReset,
    ProduceRecord,
    RecordMetadata,
    TopicInfo,
    record_keys,
    record_size,
    records_fit,
)
from meshgate.events.errors import (
    BrokerUnavailable,
    RecordTooLarge,
    TopicAlreadyExists,
    UnknownPartition,
    UnknownTopic,
)
from meshgate.events.kafka.admin import TopicAdmin
from meshgate.events.kafka.errors import map_error
from meshgate.events.kafka.fetcher import FetchSessions
from meshgate.events.kafka.groups import GroupOffsets, KafkaGroupMember, member_config
from meshgate.events.kafka.producer import AsyncProducer, Delivery
from meshgate.events.partitioner import StickyPartitioner, choose_partitions, partition_for_key

_ACKS = {"all": "all", "leader": "1", "none": "0"}


class KafkaEventLog:
    """See the module docstring. ``client_config`` adds librdkafka settings (TLS, SASL, …)."""

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        client_config: Mapping[str, Any] | None = None,
        auto_create_topics: bool = False,
        default_partitions: int = 1,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
        request_timeout: float = 10.0,
        delivery_timeout: float = 30.0,
        max_fetch_sessions: int = 32,
        data_wait: float = 5.0,
        group_protocol: Literal["classic", "consumer"] = "classic",
        close_timeout: float = 5.0,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self.auto_create_topics = auto_create_topics
        self.default_partitions = default_partitions
        self.max_record_bytes = max_record_bytes
        self.delivery_timeout = delivery_timeout
        self.group_protocol = group_protocol
        self.close_timeout = close_timeout
        self._base: dict[str, Any] = {
            "bootstrap.servers": bootstrap_servers,
            "client.id": "meshgate",
            "allow.auto.create.topics": False,
            **(client_config or {}),
        }
        self._admin_executor = ThreadPoolExecutor(4, thread_name_prefix="kafka-admin")
        self._fetch_executor = ThreadPoolExecutor(
            max_fetch_sessions, thread_name_prefix="kafka-fetch"
        )
        self._admin = TopicAdmin(self._base, self._admin_executor, request_timeout)
        self._producers: dict[str, AsyncProducer] = {}
        self._sessions = FetchSessions(
            {
                **self._base,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "error",
                "enable.partition.eof": False,
                "queued.max.messages.kbytes": 4096,
                # a broker-side long-poll in flight delays a re-assign by up to this much
                "fetch.wait.max.ms": 100,
            },
            self._fetch_executor,
            max_sessions=max_fetch_sessions,
            data_wait=data_wait,
            request_timeout=request_timeout,
        )
        self._group_offsets = GroupOffsets(
            {**self._base, "enable.auto.commit": False}, self._admin_executor, request_timeout
        )
        self._members: set[KafkaGroupMember] = set()
        self._sticky = StickyPartitioner()
        self._closed = False

    def _producer(self, acks: Acks) -> AsyncProducer:
        producer = self._producers.get(acks)
        if producer is None:
            config = {
                **self._base,
                "enable.idempotence": acks == "all",
                "acks": _ACKS[acks],
                "message.timeout.ms": int(self.delivery_timeout * 1000),
                "message.max.bytes": max(1_000_000, self.max_record_bytes + 64 * 1024),
                "linger.ms": 2,
            }
            producer = AsyncProducer(config, self._loop)
            self._producers[acks] = producer
        return producer

    async def _partitions_for_write(self, topic: str) -> int:
        try:
            return await self._admin.partition_count(topic)
        except UnknownTopic:
            if not self.auto_create_topics:
                raise
        try:
            await self._admin.create_topic(topic, self.default_partitions, None)
        except TopicAlreadyExists:
            self._admin.forget(topic)
        return await self._admin.partition_count(topic)

    async def _check_partition(self, topic: str, partition: int) -> None:
        if not 0 <= partition < await self._admin.partition_count(topic):
            raise UnknownPartition(topic, partition)

    async def produce(
        self,
        topic: str,
        records: Sequence[ProduceRecord],
        *,
        partition: int | None = None,
        acks: Acks = "all",
        timeout: float = 30.0,
    ) -> list[RecordMetadata]:
        if self._closed:
            raise BrokerUnavailable("the kafka event log is closed")
        sizes = [record_size(r.key, r.value, r.headers) for r in records]
        for size in sizes:
            if size > self.max_record_bytes:
                raise RecordTooLarge(size, self.max_record_bytes)
        deadline = self._loop.time() + timeout
        try:
            async with asyncio.timeout_at(deadline):
                partitions = await self._partitions_for_write(topic)
        except TimeoutError:
            raise BrokerUnavailable(f"kafka metadata not available within {timeout}s") from None
        if partition is not None and not 0 <= partition < partitions:
            raise UnknownPartition(topic, partition)
        chosen = choose_partitions([r.key for r in records], partitions, partition, self._sticky)
        producer = self._producer(acks)
        futures = [
            producer.send(topic, number, r.key, r.value, r.headers, r.timestamp_ms)
            for r, number in zip(records, chosen, strict=True)
        ]
        try:
            async with asyncio.timeout_at(deadline):
                deliveries: list[Delivery] = await asyncio.gather(*futures)
        except TimeoutError:
            raise BrokerUnavailable(
                f"kafka did not acknowledge the records within {timeout}s", retry_after=1.0
            ) from None
        result: list[RecordMetadata] = []
        for delivery, size, number in zip(deliveries, sizes, chosen, strict=True):
            if delivery.error is not None or delivery.placed is None:
                raise map_error(
                    delivery.error,
                    topic=topic,
                    partition=number,
                    size=size,
                    limit=self.max_record_bytes,
                )
            placed = delivery.placed
            result.append(
                RecordMetadata(topic, placed.partition, placed.offset, placed.timestamp_ms)
            )
        return result

    def produce_into(
        self,
        future: asyncio.Future[list[RecordMetadata]],
        topic: str,
        records: Sequence[ProduceRecord],
        *,
        partition: int | None = None,
        acks: Acks = "all",
    ) -> bool:
        """``produce`` without a coroutine (``api.ProduceInto``): enqueue into librdkafka now,
        ``future`` settles from the delivery reports. Only while the topic's partition count
        is cached and when every record goes to one partition; False (nothing done) else."""
        partitions = None if self._closed else self._admin.cached_partition_count(topic)
        if partitions is None or not records:
            return False
        if partition is not None and not 0 <= partition < partitions:
            raise UnknownPartition(topic, partition)
        if len(records) == 1:  # the usual HTTP produce: no per-batch lists
            record = records[0]
            key, value, headers = record[0], record[1], record[2]
            size = (record_size(key, value, headers) if headers
                    else (len(key) if key else 0) + (len(value) if value else 0))  # fmt: skip
            if size > self.max_record_bytes:
                raise RecordTooLarge(size, self.max_record_bytes)
            if partition is None:
                partition = (partition_for_key(key, partitions) if key is not None
                             else self._sticky.next_partition(partitions))  # fmt: skip
            self._producer(acks).send_one(future, topic, partition, record,
                                          self.max_record_bytes)  # fmt: skip
            return True
        if len(records) <= 8 or not records_fit(records, self.max_record_bytes):
            for r in records:
                size = record_size(r.key, r.value, r.headers)
                if size > self.max_record_bytes:
                    raise RecordTooLarge(size, self.max_record_bytes)
        chosen = choose_partitions(record_keys(records), partitions, partition, self._sticky)
        number = chosen[0]
        if chosen.count(number) != len(chosen):
            return False
        self._producer(acks).send_batch(future, topic, number, records, self.max_record_bytes)
        return True

    async def fetch(
        self,
        topic: str,
        partition: int,
        offset: int,
        *,
        max_records: int = 500,
        max_bytes: int = 1024 * 1024,
        max_wait: float = 0.0,
    ) -> FetchResult:
        await self._check_partition(topic, partition)
        records, high, low = await self._sessions.fetch(
            topic, partition, offset, max_records, max_bytes, max_wait
        )
        return FetchResult(records, high, low)

    async def offsets_for_time(self, topic: str, partition: int, timestamp_ms: int) -> int:
        await self._check_partition(topic, partition)
        return await self._admin.offset_for_time(topic, partition, timestamp_ms)

    async def earliest(self, topic: str, partition: int) -> int:
        await self._check_partition(topic, partition)
        return await self._admin.earliest(topic, partition)

    async def latest(self, topic: str, partition: int) -> int:
        await self._check_partition(topic, partition)
        return await self._admin.latest(topic, partition)

    async def commit(self, group: str, offsets: Mapping[tuple[str, int], int]) -> None:
        for topic, partition in offsets:
            await self._check_partition(topic, partition)
        await self._group_offsets.commit(group, offsets)

    async def committed(self, group: str, topic: str) -> dict[int, int]:
        partitions = await self._admin.partition_count(topic)
        return await self._group_offsets.committed(group, topic, partitions)

    async def create_topic(
        self, name: str, partitions: int = 1, config: Mapping[str, str] | None = None
    ) -> TopicInfo:
        return await self._admin.create_topic(name, partitions, config)

    async def describe_topic(self, name: str) -> TopicInfo:
        return await self._admin.describe_topic(name)

    async def list_topics(self) -> list[str]:
        return await self._admin.list_topics()

    async def delete_topic(self, name: str) -> None:
        await self._admin.delete_topic(name)
        self._sessions.forget_topic(name)

    async def join_group(
        self, group: str, topics: Sequence[str], *, auto_offset_reset: OffsetReset = "earliest"
    ) -> GroupMember:
        for topic in topics:
            await self._partitions_for_write(topic)
        member = KafkaGroupMember(
            member_config(self._base, group, auto_offset_reset, self.group_protocol),
            group,
            topics,
            on_leave=self._members.discard,
        )
        await member.start()
        self._members.add(member)
        return member

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for member in list(self._members):
            await member.leave()
        loop = self._loop
        for producer in self._producers.values():
            producer.stop_polling()
            await loop.run_in_executor(self._admin_executor, producer.close, self.close_timeout)
        await loop.run_in_executor(self._admin_executor, self._sessions.close)
        await loop.run_in_executor(self._admin_executor, self._group_offsets.close)
        # threads may still be inside a blocking librdkafka call: wait for them off the loop
        await loop.run_in_executor(None, self._admin_executor.shutdown)
        await loop.run_in_executor(None, self._fetch_executor.shutdown)
