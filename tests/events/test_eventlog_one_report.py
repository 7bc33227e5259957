"""The Kafka producer's one-record delivery reports (``send_one``): metadata or the mapped
error settles the future exactly once, on the loop thread even when librdkafka reports from
another thread, a future already done is left alone — and with a broker that never answers,
every pending record's future is failed exactly once."""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any

from confluent_kafka import KafkaError

from meshgate.events.api import ProduceRecord, RecordMetadata
from meshgate.events.errors import BrokerUnavailable, RecordTooLarge
from meshgate.events.kafka.producer import AsyncProducer, _OneReport


class FakeMessage:
    def __init__(self, offset: int | None, timestamp: int = 1234) -> None:
        self._offset, self._timestamp = offset, timestamp

    def offset(self) -> int | None:
        return self._offset

    def timestamp(self) -> tuple[int, int]:
        return (1, self._timestamp)

    def partition(self) -> int:
        return 2

    def value(self) -> bytes:
        return b"value"

    def key(self) -> bytes | None:
        return None


class FakeProducer:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._loop_thread = threading.get_ident()
        self._in_flight = 1


def _report() -> tuple[_OneReport, FakeProducer, asyncio.Future[list[RecordMetadata]]]:
    loop = asyncio.get_running_loop()
    producer = FakeProducer(loop)
    future: asyncio.Future[list[RecordMetadata]] = loop.create_future()
    return _OneReport(producer, future, "t", 100), producer, future  # type: ignore[arg-type]


def test_a_delivered_record_settles_with_its_metadata() -> None:
    async def scenario() -> None:
        report, producer, future = _report()
        report.on_delivery(None, FakeMessage(41, 99))
        assert future.result() == [RecordMetadata("t", 2, 41, 99)]
        assert producer._in_flight == 0

    asyncio.run(scenario())


def test_an_unknown_offset_reads_as_minus_one() -> None:
    async def scenario() -> None:
        for offset in (None, -1001):
            report, _, future = _report()
            report.on_delivery(None, FakeMessage(offset))
            assert future.result()[0].offset == -1

    asyncio.run(scenario())


def test_a_failed_record_fails_the_future_with_the_mapped_error() -> None:
    async def scenario() -> None:
        report, producer, future = _report()
        report.on_delivery(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE), FakeMessage(None))
        assert isinstance(future.exception(), RecordTooLarge)
        assert producer._in_flight == 0
        report, _, future = _report()
        report.on_delivery(KafkaError(KafkaError._MSG_TIMED_OUT), FakeMessage(None))
        assert isinstance(future.exception(), BrokerUnavailable)

    asyncio.run(scenario())


def test_a_future_already_done_is_left_alone() -> None:
    async def scenario() -> None:
        report, producer, future = _report()
        future.cancel()  # the request stopped waiting
        report.on_delivery(None, FakeMessage(1))
        assert future.cancelled()
        assert producer._in_flight == 0

    asyncio.run(scenario())


def test_a_report_from_another_thread_settles_on_the_loop() -> None:
    async def scenario() -> None:
        report, producer, future = _report()
        settled_on: list[int] = []
        future.add_done_callback(lambda _: settled_on.append(threading.get_ident()))
        thread = threading.Thread(target=report.on_delivery, args=(None, FakeMessage(7)))
        thread.start()
        await asyncio.to_thread(thread.join)
        assert (await asyncio.wait_for(future, 5))[0].offset == 7
        assert settled_on == [producer._loop_thread]

    asyncio.run(scenario())


class CountingFuture(asyncio.Future[list[RecordMetadata]]):
    """Counts how often it is settled (a second time would also raise)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop=loop)
        self.settled = 0

    def set_result(self, result: list[RecordMetadata]) -> None:
        self.settled += 1
        super().set_result(result)

    def set_exception(self, exception: Any) -> None:
        self.settled += 1
        super().set_exception(exception)


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port  # closed again: nothing listens there


def test_every_pending_record_fails_exactly_once_when_the_broker_never_answers() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        config = {"bootstrap.servers": f"127.0.0.1:{_dead_port()}", "message.timeout.ms": 300,
                  "enable.idempotence": True, "acks": "all", "linger.ms": 2,
                  "log_level": 0}  # fmt: skip
        producer = AsyncProducer(config, loop)
        futures = [CountingFuture(loop) for _ in range(200)]
        for number, future in enumerate(futures):
            record = ProduceRecord(None, b"v%d" % number, (("h", b"1"),) if number % 2 else ())
            producer.send_one(future, "t", 0, record, 1000)
        _done, pending = await asyncio.wait(futures, timeout=20)
        producer.stop_polling()
        assert not pending
        assert all(isinstance(f.exception(), BrokerUnavailable) for f in futures)
        assert [f.settled for f in futures] == [1] * len(futures)
        assert producer._in_flight == 0
        assert await asyncio.to_thread(producer.close, 5) == 0

    asyncio.run(scenario())
