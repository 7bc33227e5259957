"""A librdkafka ``Producer`` whose delivery reports resolve asyncio futures.

A dedicated thread calls ``Producer.poll`` in a loop; each delivery callback (run on that
thread) hands its outcome to the event loop with ``call_soon_threadsafe``. ``send`` only
enqueues into librdkafka (non-blocking), so it is called on the event loop itself.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any, NamedTuple

from confluent_kafka import KafkaException, Producer

from meshgate.events.errors import BrokerUnavailable
from meshgate.events.kafka.errors import map_error

_POLL_INTERVAL = 0.05


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

    def __init__(self, config: dict[str, Any], loop: asyncio.AbstractEventLoop, name: str):
        self._loop = loop
        self._producer = Producer(config)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._poll_forever, name=name, daemon=True)
        self._thread.start()

    def _poll_forever(self) -> None:
        while not self._stopping.is_set():
            self._producer.poll(_POLL_INTERVAL)

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
        return future

    def list_topics(self, topic: str | None, timeout: float) -> Any:
        """Cluster metadata (blocking: call it off the event loop)."""
        return self._producer.list_topics(topic, timeout=timeout)

    def close(self, flush_timeout: float) -> int:
        """Flush (blocking, bounded), stop the poller; returns records left undelivered."""
        self._stopping.set()
        self._thread.join()
        return int(self._producer.flush(flush_timeout))


def _settle(future: asyncio.Future[Delivery], outcome: Delivery) -> None:
    if not future.done():
        future.set_result(outcome)
