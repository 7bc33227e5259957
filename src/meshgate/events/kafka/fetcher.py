"""Stateless reads from an offset for the Kafka backend: a pool of assign()-based consumers.

A fetch session is a librdkafka ``Consumer`` (no group membership, no commits) assigned to one
partition at a position. A fetch at the session's position continues its prefetched stream; any
other offset re-assigns. Records read past a fetch's limits are kept for the next fetch at that
position. Sessions are pooled per partition (idle ones are reused, the least recently used is
closed beyond ``max_sessions``); their blocking calls run on the fetch executor, one per thread.

Long-poll: ``poll(max_wait)`` returns as soon as one record arrives, then whatever is already
buffered is drained without waiting. When nothing came but the partition has data past the
position (the session was just assigned), it keeps waiting up to ``data_wait``.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections import deque
from concurrent.futures import Executor
from typing import Any

from confluent_kafka import Consumer, KafkaError, TopicPartition

from meshgate.events.api import ConsumedRecord
from meshgate.events.errors import OffsetOutOfRange
from meshgate.events.kafka.errors import map_error

Key = tuple[str, int]
_session_ids = itertools.count(1)


def to_record(message: Any) -> ConsumedRecord:
    headers = message.headers() or []
    return ConsumedRecord(
        message.topic(),
        message.partition(),
        message.offset(),
        message.timestamp()[1],
        message.key(),
        message.value(),
        [(name, value if value is not None else b"") for name, value in headers],
    )


def message_size(message: Any) -> int:
    size = len(message.key() or b"") + len(message.value() or b"")
    for name, value in message.headers() or []:
        size += len(name) + len(value or b"")
    return size


class FetchSession:
    """One consumer assigned to one partition; used by one fetch at a time."""

    def __init__(self, config: dict[str, Any], key: Key) -> None:
        self.key = key
        self.consumer = Consumer(config)
        self.position: int | None = None
        self.leftovers: deque[Any] = deque()
        self.busy = False
        self.reset_pending = False
        self.last_used = time.monotonic()
        self.closed = False

    def _assign(self, offset: int) -> None:
        topic, partition = self.key
        self.consumer.assign([TopicPartition(topic, partition, offset)])
        self.position = offset
        self.reset_pending = False
        self.leftovers.clear()

    def watermarks(self, timeout: float) -> tuple[int, int]:
        topic, partition = self.key
        low, high = self.consumer.get_watermark_offsets(
            TopicPartition(topic, partition), cached=True
        )
        if low < 0 or high < 0:
            found = self.consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=timeout, cached=False
            )
            if found is None:
                return 0, 0
            low, high = found
        return int(low), int(high)

    def _next_messages(self, count: int, wait: float) -> list[Any]:
        if self.leftovers:
            taken = [self.leftovers.popleft() for _ in range(min(count, len(self.leftovers)))]
            return taken
        first = self.consumer.poll(wait)
        if first is None:
            return []
        return [first, *self.consumer.consume(count - 1, 0)] if count > 1 else [first]

    def fetch(
        self,
        offset: int,
        max_records: int,
        max_bytes: int,
        max_wait: float,
        data_wait: float,
        request_timeout: float,
    ) -> tuple[list[ConsumedRecord], int, int]:
        """Blocking: records from ``offset`` plus the (high watermark, log start)."""
        topic, partition = self.key
        if offset != self.position:
            self._assign(offset)
        deadline = time.monotonic() + max_wait
        waited_for_data = False
        reassigns = 0
        while True:
            messages = self._next_messages(max_records, max(0.0, deadline - time.monotonic()))
            records = self._take(messages, max_records, max_bytes, offset)
            if records:
                break
            low, high = self.watermarks(request_timeout)
            assert self.position is not None
            if self.position > high:
                raise OffsetOutOfRange(topic, partition, self.position, high)
            if (self.position < low or self.reset_pending) and reassigns < 3:
                reassigns += 1
                self._assign(max(low, self.position))
                continue
            if high > self.position and not waited_for_data:
                waited_for_data = True
                deadline = max(deadline, time.monotonic() + data_wait)
                continue
            if time.monotonic() >= deadline:
                return [], high, low
        low, high = self.watermarks(request_timeout)
        return records, max(high, records[-1].offset + 1), low

    def _take(
        self, messages: list[Any], max_records: int, max_bytes: int, offset: int
    ) -> list[ConsumedRecord]:
        records: list[ConsumedRecord] = []
        used = 0
        for index, message in enumerate(messages):
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    continue
                if error.code() in (KafkaError._AUTO_OFFSET_RESET, KafkaError.OFFSET_OUT_OF_RANGE):
                    # the caller re-assigns from the watermarks
                    self.reset_pending = True
                    self.leftovers.clear()
                    return records
                raise map_error(error, topic=self.key[0], partition=self.key[1])
            if message.offset() < offset:
                continue
            size = message_size(message)
            if records and (used + size > max_bytes or len(records) >= max_records):
                self.leftovers.extendleft(reversed(messages[index:]))
                break
            records.append(to_record(message))
            used += size
        if records:
            self.position = records[-1].offset + 1
        return records

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.consumer.close()


class FetchSessions:
    """The pool; ``fetch`` picks or creates a session and runs it on the fetch executor."""

    def __init__(
        self,
        config: dict[str, Any],
        executor: Executor,
        *,
        max_sessions: int,
        data_wait: float,
        request_timeout: float,
    ) -> None:
        self._config = config
        self._executor = executor
        self._max_sessions = max_sessions
        self._data_wait = data_wait
        self._request_timeout = request_timeout
        self._sessions: dict[Key, list[FetchSession]] = {}
        self._guard = threading.Lock()

    def _checkout(self, key: Key, offset: int) -> FetchSession:
        with self._guard:
            candidates = [s for s in self._sessions.get(key, []) if not s.busy]
            chosen = next((s for s in candidates if s.position == offset), None)
            if chosen is None and candidates:
                chosen = candidates[0]
            if chosen is None:
                self._evict_idle()
                chosen = FetchSession(
                    {**self._config, "group.id": f"meshgate-fetch-{next(_session_ids)}"}, key
                )
                self._sessions.setdefault(key, []).append(chosen)
            chosen.busy = True
            return chosen

    def _evict_idle(self) -> None:
        total = sum(len(v) for v in self._sessions.values())
        idle = sorted(
            (s for v in self._sessions.values() for s in v if not s.busy),
            key=lambda s: s.last_used,
        )
        while total >= self._max_sessions and idle:
            victim = idle.pop(0)
            self._sessions[victim.key].remove(victim)
            victim.close()
            total -= 1

    def _run(
        self, key: Key, offset: int, max_records: int, max_bytes: int, max_wait: float
    ) -> tuple[list[ConsumedRecord], int, int]:
        session = self._checkout(key, offset)
        try:
            return session.fetch(
                offset, max_records, max_bytes, max_wait, self._data_wait, self._request_timeout
            )
        finally:
            session.last_used = time.monotonic()
            session.busy = False

    async def fetch(
        self,
        topic: str,
        partition: int,
        offset: int,
        max_records: int,
        max_bytes: int,
        max_wait: float,
    ) -> tuple[list[ConsumedRecord], int, int]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, self._run, (topic, partition), offset, max_records, max_bytes, max_wait
        )

    def forget_topic(self, topic: str) -> None:
        with self._guard:
            for key in [k for k in self._sessions if k[0] == topic]:
                for session in self._sessions.pop(key):
                    if not session.busy:
                        session.close()

    def close(self) -> None:
        """Blocking: close every session."""
        with self._guard:
            sessions = [s for v in self._sessions.values() for s in v]
            self._sessions.clear()
        for session in sessions:
            session.close()
