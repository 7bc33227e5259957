"""Batch bookkeeping on the produce path, without a broker: the Kafka producer's per-batch
delivery reports (metadata in produce order, unknown offsets as -1, the first error, an
abandoned batch), ``records_fit`` (never True when a record is too large) and the keyless
partition choice of a whole batch."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshgate.events.api import ProduceRecord, RecordMetadata, record_size, records_fit
from meshgate.events.errors import EventLogError
from meshgate.events.kafka.producer import _BatchReport
from meshgate.events.partitioner import StickyPartitioner, choose_partitions


class FakeMessage:
    def __init__(self, offset: int | None, timestamp: int, value: bytes = b"v") -> None:
        self._offset, self._timestamp, self._value = offset, timestamp, value

    def offset(self) -> int | None:
        return self._offset

    def timestamp(self) -> tuple[int, int]:
        return (1, self._timestamp)

    def partition(self) -> int:
        return 3

    def value(self) -> bytes:
        return self._value

    def key(self) -> bytes | None:
        return None


class FakeProducer:
    def __init__(self, loop: asyncio.AbstractEventLoop, in_flight: int) -> None:
        self._loop = loop
        self._loop_thread = threading.get_ident()
        self._in_flight = in_flight


def _report(count: int) -> tuple[_BatchReport, FakeProducer, asyncio.Future[Any]]:
    loop = asyncio.get_running_loop()
    producer = FakeProducer(loop, count)
    future: asyncio.Future[list[RecordMetadata]] = loop.create_future()
    return _BatchReport(producer, future, "t", 3, count, 100), producer, future  # type: ignore[arg-type]


def test_metadata_comes_in_produce_order_once_all_are_delivered() -> None:
    async def scenario() -> None:
        report, producer, future = _report(3)
        for offset in (11, 10):  # delivered out of order
            report.on_delivery(None, FakeMessage(offset, 1000 + offset))
        assert not future.done()
        report.on_delivery(None, FakeMessage(12, 1012))
        assert await future == [RecordMetadata("t", 3, o, 1000 + o) for o in (10, 11, 12)]
        assert producer._in_flight == 0

    asyncio.run(scenario())


def test_unknown_offsets_read_as_minus_one() -> None:
    async def scenario() -> None:
        report, _, future = _report(2)
        report.on_delivery(None, FakeMessage(None, 5))
        report.on_delivery(None, FakeMessage(-1001, 6))
        assert [(m.offset, m.timestamp) for m in await future] == [(-1, 5), (-1, 6)]

    asyncio.run(scenario())


def test_the_first_error_fails_the_batch() -> None:
    async def scenario() -> None:
        from confluent_kafka import KafkaError

        report, producer, future = _report(2)
        report.on_delivery(KafkaError(KafkaError._MSG_TIMED_OUT), FakeMessage(None, 1))
        report.on_delivery(None, FakeMessage(7, 1))
        with pytest.raises(EventLogError):
            await future
        assert producer._in_flight == 0

    asyncio.run(scenario())


def test_an_abandoned_batch_never_settles_but_counts_its_deliveries() -> None:
    async def scenario() -> None:
        report, producer, future = _report(5)
        producer._in_flight = 2  # two were enqueued before the queue was full
        report.abandon(2)
        report.on_delivery(None, FakeMessage(1, 1))
        report.on_delivery(None, FakeMessage(2, 1))
        await asyncio.sleep(0)
        assert not future.done()
        assert producer._in_flight == 0

    asyncio.run(scenario())


RECORDS = st.lists(
    st.builds(
        ProduceRecord,
        key=st.none() | st.binary(max_size=40),
        value=st.none() | st.binary(max_size=40),
        headers=st.lists(st.tuples(st.text(max_size=4), st.binary(max_size=8)), max_size=2).map(
            tuple
        ),
    ),
    max_size=12,
)


@given(RECORDS, st.integers(0, 90))
def test_records_fit_only_when_every_record_does(records: list[ProduceRecord], limit: int) -> None:
    every = all(record_size(r.key, r.value, r.headers) <= limit for r in records)
    if records_fit(records, limit):
        assert every
    elif not any(r.headers for r in records) and every:
        # without headers the test is exact but for key and value maxima in different records
        longest = max((len(r.value or b"") for r in records), default=0)
        assert longest + max((len(r.key or b"") for r in records), default=0) > limit


@given(st.lists(st.none() | st.binary(max_size=3), max_size=6), st.integers(1, 5))
def test_a_batch_takes_the_same_partitions_as_one_record_at_a_time(
    keys: list[bytes | None], partitions: int
) -> None:
    batch, single = StickyPartitioner(), StickyPartitioner()
    chosen = choose_partitions(keys, partitions, None, batch)
    keyless = None
    for key, number in zip(keys, chosen, strict=True):
        if key is None:
            keyless = keyless if keyless is not None else single.next_partition(partitions)
            assert number == keyless
    assert batch.next_partition(partitions) == single.next_partition(partitions)
