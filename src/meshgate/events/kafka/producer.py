"""A librdkafka ``Producer`` whose delivery reports resolve asyncio futures.

``send`` only enqueues into librdkafka (non-blocking), so it is called on the event loop
itself, and so is ``Producer.poll(0)``, which runs the delivery callbacks: every
``_BUSY_POLL`` seconds while records are in flight, every ``_IDLE_POLL`` seconds otherwise
(error callbacks).  A poller thread would instead take the GIL from the loop for every
delivery and wake it with ``call_soon_threadsafe`` — at 50 concurrent produces that
hand-off, not Kafka, set the pace.  ``close`` flushes on whatever thread calls it; delivery
reports that arrive there reach the loop thread-safely.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any, NamedTuple

from confluent_kafka import KafkaException, Producer

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
        self._schedule(0.0)

    def _schedule(self, delay: float) -> None:
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
