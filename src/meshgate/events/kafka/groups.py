"""Consumer groups on Kafka: real group members, and group offsets committed from outside.

``KafkaGroupMember`` is a subscribed librdkafka ``Consumer`` (the broker's group coordinator
splits the partitions between members on every gateway node). All its calls run on its own
single thread, because rebalance callbacks fire inside ``poll``. Joining does not wait for an
assignment: the group settles while members keep polling (a member that does not poll for
``max.poll.interval.ms`` is dropped from the group). Offsets are committed only by ``commit``
(auto-commit off), covering exactly the records ``poll`` returned.

``GroupOffsets`` commits and reads a group's offsets without joining it (a consumer with that
``group.id`` that never subscribes), as the Kafka tools do for an empty group.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from meshgate.events.api import ConsumedRecord, OffsetReset
from meshgate.events.kafka.errors import kafka_error_of, map_error
from meshgate.events.kafka.fetcher import to_record

T = TypeVar("T")


class KafkaGroupMember:
    """A ``GroupMember`` backed by a subscribed consumer."""

    def __init__(
        self,
        config: dict[str, Any],
        group: str,
        topics: Sequence[str],
        on_leave: Callable[[KafkaGroupMember], None] | None = None,
    ) -> None:
        self._on_leave = on_leave
        self._group = group
        self._topics = list(topics)
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=f"group-{group}")
        self._consumer = Consumer(config)
        self._assigned: set[tuple[str, int]] = set()
        self._closed = False

    @property
    def group(self) -> str:
        return self._group

    async def _call(self, func: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, func, *args)

    # eager protocols hand over the whole assignment, incremental ones (KIP-848) the change
    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        self._assigned |= {(tp.topic, tp.partition) for tp in partitions}

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        self._assigned -= {(tp.topic, tp.partition) for tp in partitions}

    async def start(self) -> None:
        """Subscribe; the group assigns partitions while members ``poll``."""
        await self._call(
            lambda: self._consumer.subscribe(
                self._topics,
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_revoke,
            )
        )

    def assignment(self) -> list[tuple[str, int]]:
        return sorted(self._assigned)

    def _poll_blocking(self, max_records: int, max_wait: float) -> list[ConsumedRecord]:
        first = self._consumer.poll(max_wait)
        if first is None:
            return []
        messages = (
            [first, *self._consumer.consume(max_records - 1, 0)] if max_records > 1 else [first]
        )
        records: list[ConsumedRecord] = []
        for message in messages:
            error = message.error()
            if error is None:
                records.append(to_record(message))
            elif error.code() != KafkaError._PARTITION_EOF:
                raise map_error(error, topic=message.topic() or "")
        return records

    async def poll(self, max_records: int = 500, max_wait: float = 1.0) -> list[ConsumedRecord]:
        if self._closed:
            return []
        return await self._call(self._poll_and_store, max_records, max_wait)

    def _poll_and_store(self, max_records: int, max_wait: float) -> list[ConsumedRecord]:
        records = self._poll_blocking(max_records, max_wait)
        self._store_positions(records)
        return records

    def _store_positions(self, records: list[ConsumedRecord]) -> None:
        """Mark records as handed out, so ``commit`` covers exactly what ``poll`` returned."""
        after: dict[tuple[str, int], int] = {}
        for record in records:
            after[(record.topic, record.partition)] = record.offset + 1
        for (topic, partition), offset in after.items():
            try:
                self._consumer.store_offsets(offsets=[TopicPartition(topic, partition, offset)])
            except KafkaException:
                pass  # the partition was revoked meanwhile; its new owner re-reads it

    def _commit_blocking(self) -> None:
        try:
            self._consumer.commit(asynchronous=False)
        except KafkaException as exc:
            error = kafka_error_of(exc)
            if error is not None and error.code() == KafkaError._NO_OFFSET:
                return  # nothing consumed since the last commit
            raise map_error(exc) from None

    async def commit(self) -> None:
        if not self._closed:
            await self._call(self._commit_blocking)

    async def leave(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._call(self._consumer.close)
        self._thread.shutdown(wait=False)
        if self._on_leave is not None:
            self._on_leave(self)


class GroupOffsets:
    """Commit/read a group's offsets without joining it; one idle consumer per group."""

    def __init__(self, config: dict[str, Any], executor: Executor, request_timeout: float):
        self._config = config
        self._executor = executor
        self._request_timeout = request_timeout
        self._consumers: dict[str, Any] = {}
        self._guard = threading.Lock()

    def _consumer_of(self, group: str) -> Any:
        with self._guard:
            consumer = self._consumers.get(group)
            if consumer is None:
                consumer = Consumer({**self._config, "group.id": group})
                self._consumers[group] = consumer
            return consumer

    async def _call(self, func: Callable[[], T]) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, func)
        except KafkaException as exc:
            raise map_error(exc) from None

    async def commit(self, group: str, offsets: Mapping[tuple[str, int], int]) -> None:
        partitions = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]

        def commit_blocking() -> None:
            results = self._consumer_of(group).commit(offsets=partitions, asynchronous=False)
            for result in results or []:
                if result.error is not None:
                    raise map_error(result.error, topic=result.topic, partition=result.partition)

        await self._call(commit_blocking)

    async def committed(self, group: str, topic: str, partitions: int) -> dict[int, int]:
        wanted = [TopicPartition(topic, p) for p in range(partitions)]

        def committed_blocking() -> list[Any]:
            found = self._consumer_of(group).committed(wanted, timeout=self._request_timeout)
            return list(found)

        return {
            tp.partition: tp.offset for tp in await self._call(committed_blocking) if tp.offset >= 0
        }

    def close(self) -> None:
        """Blocking: close the consumers."""
        for consumer in self._consumers.values():
            consumer.close()
        self._consumers.clear()


def member_config(
    base: dict[str, Any], group: str, reset: OffsetReset, protocol: str
) -> dict[str, Any]:
    return {
        **base,
        "group.protocol": protocol,
        "group.id": group,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": reset,
    }
