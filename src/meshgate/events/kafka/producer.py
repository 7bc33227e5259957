"""A librdkafka ``Producer`` whose delivery reports resolve asyncio futures.

``send`` only enqueues into librdkafka (non-blocking), so it is called on the event loop
itself, and so is ``Producer.poll(0)``, which runs the delivery callbacks: every
``_BUSY_POLL`` seconds while records are in flight, every ``_IDLE_POLL`` seconds otherwise
(error callbacks).  A poller thread would instead take the GIL from the loop for every
delivery and wake it with ``call_soon_threadsafe`` — at 50 concurrent produces that
hand-off, not Kafka, set the pace.  ``close`` flushes on whatever thread calls it; delivery
reports that arrive there reach the loop thread-safely.

``send_batch`` is the lighter form for records bound for one partition: one callable and one
future for the whole batch (librdkafka reports a partition's records in produce order);
``send_one`` is the same for one record with a report object of four slots (the HTTP
single-record produce: no lists, no sort, no closure per record).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from itertools import repeat
from operator import itemgetter
from typing import Any, NamedTuple, cast

from confluent_kafka import KafkaException, Producer

from meshgate.events.api import ProduceRecord, RecordMetadata
from meshgate.events.errors import BrokerUnavailable
from meshgate.events.kafka.errors import map_error

_BUSY_POLL = 0.001  # s between polls while records are in flight
_IDLE_POLL = 0.1


class Delivered(NamedTuple):
    partition: int
    offset: int
    timestamp_ms: int


class Delivery(NamedTuple):
    """A delivery report as the event loop receives it: an error or where the record went."""

    error: Any
    placed: Delivered | None


class AsyncProducer:
    """Producer + poller thread; ``close`` flushes (bounded) and stops the thread."""

    def __init__(self, config: dict[str, Any], loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._loop_thread = threading.get_ident()
        self._producer = Producer(config)
        self._in_flight = 0
        self._closed = False
        self._timer: asyncio.TimerHandle | None = None
        self._due = 0.0  # loop time of the next poll
        self._idle = True  # the next poll is _IDLE_POLL away: an enqueue brings it closer
        self._schedule(0.0)

    def _schedule(self, delay: float) -> None:
        self._idle = delay > _BUSY_POLL
        self._due = self._loop.time() + delay
        self._timer = self._loop.call_at(self._due, self._poll)

    def _poll(self) -> None:
        self._timer = None
        if self._closed:
            return
        self._producer.poll(0)
        self._schedule(_BUSY_POLL if self._in_flight else _IDLE_POLL)

    def _poll_soon(self) -> None:
        """Poll within ``_BUSY_POLL`` (a record was just enqueued)."""
        timer = self._timer
        if timer is not None and self._due - self._loop.time() > _BUSY_POLL:
            timer.cancel()
            self._schedule(_BUSY_POLL)

    def send(
        self,
        topic: str,
        partition: int,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]],
        timestamp_ms: int | None,
    ) -> asyncio.Future[Delivery]:
        """Enqueue one record; the future gets its delivery report (never an exception)."""
        future: asyncio.Future[Delivery] = self._loop.create_future()
        loop = self._loop

        def on_delivery(error: Any, message: Any) -> None:
            if error is not None:
                outcome = Delivery(error, None)
            else:
                _, timestamp = message.timestamp()
                offset = message.offset()  # None or negative with acks=0: not known
                known = offset if offset is not None and offset >= 0 else -1
                outcome = Delivery(None, Delivered(message.partition(), known, timestamp))
            self._in_flight -= 1
            if threading.get_ident() == self._loop_thread:
                _settle(future, outcome)
                return
            try:
                loop.call_soon_threadsafe(_settle, future, outcome)
            except RuntimeError:
                pass  # the loop is gone; nobody is waiting any more

        extra: dict[str, Any] = {}
        if headers:
            extra["headers"] = list(headers)
        if timestamp_ms is not None:
            extra["timestamp"] = timestamp_ms
        try:
            self._producer.produce(
                topic, value=value, key=key, partition=partition, on_delivery=on_delivery, **extra
            )
        except BufferError:
            raise BrokerUnavailable("kafka producer queue is full", retry_after=1.0) from None
        except KafkaException as exc:
            raise map_error(exc, topic=topic, partition=partition) from None
        self._in_flight += 1
        self._poll_soon()
        return future

    def send_batch(
        self,
        future: asyncio.Future[list[RecordMetadata]],
        topic: str,
        partition: int,
        records: Sequence[ProduceRecord],
        max_record_bytes: int,
    ) -> None:
        """Enqueue ``records`` for ``partition``; ``future`` gets their metadata in order once
        every one is delivered, or the first record's error (mapped). A ``future`` already
        done then is left alone. Raises (``BrokerUnavailable`` when librdkafka's queue is
        full) if a record cannot be enqueued; records enqueued before it are still sent."""
        report = _BatchReport(self, future, topic, partition, len(records), max_record_bytes)
        produce = self._producer.produce
        on_delivery = report.on_delivery
        sent = 0
        try:
            for key, value, headers, timestamp_ms in records:
                if headers or timestamp_ms is not None:
                    produce(topic, value, key, partition, on_delivery,
                            **_extras(headers, timestamp_ms))  # fmt: skip
                else:
                    produce(topic, value, key, partition, on_delivery)
                sent += 1
        except BufferError:
            report.abandon(sent)
            raise BrokerUnavailable("kafka producer queue is full", retry_after=1.0) from None
        except KafkaException as exc:
            report.abandon(sent)
            raise map_error(exc, topic=topic, partition=partition) from None
        finally:
            self._in_flight += sent
            self._poll_soon()

    def send_one(
        self,
        future: asyncio.Future[list[RecordMetadata]],
        topic: str,
        partition: int,
        record: ProduceRecord,
        max_record_bytes: int,
    ) -> None:
        """``send_batch`` of one record, with a lighter report (no lists, no sort)."""
        key, value, headers, timestamp_ms = record
        on_delivery = _OneReport(self, future, topic, max_record_bytes).on_delivery
        try:
            if timestamp_ms is not None:
                self._producer.produce(topic, value, key, partition, on_delivery, None,
                                       timestamp_ms, list(headers) if headers else None)  # fmt: skip
            elif headers:
                self._producer.produce(topic, value, key, partition, on_delivery, None, 0,
                                       list(headers))  # fmt: skip
            else:
                self._producer.produce(topic, value, key, partition, on_delivery)
        except BufferError:
            raise BrokerUnavailable("kafka producer queue is full", retry_after=1.0) from None
        except KafkaException as exc:
            raise map_error(exc, topic=topic, partition=partition) from None
        self._in_flight += 1
        if self._idle:
            self._poll_soon()

    def list_topics(self, topic: str | None, timeout: float) -> Any:
        """Cluster metadata (blocking: call it off the event loop)."""
        return self._producer.list_topics(topic, timeout=timeout)

    def stop_polling(self) -> None:
        """Stop polling on the loop (call on the loop thread, before ``close``)."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def close(self, flush_timeout: float) -> int:
        """Flush (blocking, bounded); returns records left undelivered."""
        self._closed = True
        return int(self._producer.flush(flush_timeout))


def _settle(future: asyncio.Future[Delivery], outcome: Delivery) -> None:
    if not future.done():
        future.set_result(outcome)


def _extras(headers: Sequence[tuple[str, bytes]], timestamp_ms: int | None) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if headers:
        extra["headers"] = list(headers)
    if timestamp_ms is not None:
        extra["timestamp"] = timestamp_ms
    return extra


class _BatchReport:
    """Collects the delivery reports of one ``send_batch`` and settles its future once.

    A report appends the record's offset and timestamp to two lists (the message itself is
    not kept: fewer objects for the cyclic GC to count); the metadata tuples are built from
    the lists in one C loop when the last report arrives."""

    __slots__ = ("_limit", "_producer", "error", "expected", "future", "offsets", "partition",
                 "settles", "timestamps", "topic")  # fmt: skip

    def __init__(
        self,
        producer: AsyncProducer,
        future: asyncio.Future[list[RecordMetadata]],
        topic: str,
        partition: int,
        count: int,
        limit: int,
    ) -> None:
        self._producer = producer
        self.future = future
        self.topic = topic
        self.partition = partition
        self.expected = count
        self.settles = True
        self.offsets: list[int | None] = []
        self.timestamps: list[int] = []
        self.error: BaseException | None = None
        self._limit = limit

    def on_delivery(self, error: Any, message: Any) -> None:
        if error is not None and self.error is None:
            size = len(message.value() or b"") + len(message.key() or b"")
            self.error = map_error(error, topic=self.topic, partition=message.partition(),
                                   size=size, limit=self._limit)  # fmt: skip
        offsets = self.offsets
        offsets.append(message.offset())
        self.timestamps.append(message.timestamp()[1])
        if len(offsets) == self.expected:
            self._all_delivered()

    def _all_delivered(self) -> None:
        producer = self._producer
        producer._in_flight -= self.expected
        if not self.settles:
            return
        if threading.get_ident() == producer._loop_thread:
            self.settle()
            return
        try:
            producer._loop.call_soon_threadsafe(self.settle)
        except RuntimeError:
            pass  # the loop is gone; nobody is waiting any more

    def abandon(self, sent: int) -> None:
        """Enqueueing failed after ``sent`` records: their reports must not settle the future."""
        self.settles = False
        self.expected = sent
        if sent and len(self.offsets) >= sent:
            self._all_delivered()

    def settle(self) -> None:
        future = self.future
        if future.done():
            return
        if self.error is not None:
            future.set_exception(self.error)
            return
        offsets = self.offsets
        try:
            known = min(cast(list[int], offsets), default=0) >= 0
        except TypeError:  # None among them
            known = False
        if not known:  # acks=0: None or negative offsets, not known
            offsets = [offset if offset is not None and offset >= 0 else -1 for offset in offsets]
        count = len(offsets)
        fields = zip(repeat(self.topic, count), repeat(self.partition, count), offsets,
                     self.timestamps, strict=True)  # fmt: skip
        placed = list(map(_new_tuple, repeat(RecordMetadata, count), fields))
        if known and count > 1:  # reports come in produce order; offsets say so for certain
            placed.sort(key=_OFFSET_OF)
        future.set_result(placed)


_OFFSET_OF = itemgetter(2)  # RecordMetadata.offset, read in C
_new_tuple = tuple.__new__  # a NamedTuple built with no Python __new__ frame (one per record)


class _OneReport:
    """The delivery report of a one-record ``send_one``: settles its future with
    ``[RecordMetadata]`` or the mapped error (on the loop thread, or thread-safely)."""

    __slots__ = ("future", "limit", "producer", "topic")

    def __init__(
        self,
        producer: AsyncProducer,
        future: asyncio.Future[list[RecordMetadata]],
        topic: str,
        limit: int,
    ) -> None:
        self.producer = producer
        self.future = future
        self.topic = topic
        self.limit = limit

    def on_delivery(self, error: Any, message: Any) -> None:
        producer = self.producer
        producer._in_flight -= 1
        if threading.get_ident() != producer._loop_thread:
            try:
                producer._loop.call_soon_threadsafe(self.on_delivery_here, error, message)
            except RuntimeError:
                pass  # the loop is gone; nobody is waiting any more
            return
        self.on_delivery_here(error, message)

    def on_delivery_here(self, error: Any, message: Any) -> None:
        future = self.future
        if future.done():
            return
        if error is not None:
            size = len(message.value() or b"") + len(message.key() or b"")
            future.set_exception(map_error(error, topic=self.topic, partition=message.partition(),
                                           size=size, limit=self.limit))  # fmt: skip
            return
        offset = message.offset()  # None or negative with acks=0: not known
        if offset is None or offset < 0:
            offset = -1
        future.set_result([_new_tuple(RecordMetadata, (self.topic, message.partition(), offset,
                                                       message.timestamp()[1]))])  # fmt: skip
