"""Kafka backend specifics: fidelity with kcat (a client that is not ours), broker faults."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time

import pytest
from events_helpers import kafka_bootstrap, unique_topic

from meshgate.events.api import ConsumedRecord, ProduceRecord
from meshgate.events.errors import BrokerUnavailable, RecordTooLarge
from meshgate.events.kafka import KafkaEventLog
from meshgate.events.partitioner import partition_for_key
from testkit import free_port

pytestmark = pytest.mark.services


def kcat() -> str:
    found = shutil.which("kcat")
    if found is None:
        pytest.skip("kcat is not installed (scripts/services/kafka.sh installs it)")
    return found


def kcat_read(bootstrap: str, topic: str, count: int) -> list[dict[str, object]]:
    """The first ``count`` records of ``topic`` as kcat's JSON envelopes."""
    result = subprocess.run(
        [
            kcat(),
            "-C",
            "-b",
            bootstrap,
            "-t",
            topic,
            "-J",
            "-o",
            "beginning",
            "-c",
            str(count),
            "-q",
        ],
        capture_output=True,
        timeout=30,
        check=True,
    )
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def test_records_we_produce_read_back_intact_by_kcat() -> None:
    bootstrap = kafka_bootstrap()
    topic = unique_topic()
    stamp = int(time.time() * 1000) - 5000
    sent = [
        ProduceRecord(
            b"order-1",
            '{"total": 12.5, "name": "Zoë"}'.encode(),
            [("ce_type", b"order.created"), ("trace", b"abc")],
            stamp,
        ),
        ProduceRecord(None, b"no key", [("x", b"1"), ("x", b"2")]),
        ProduceRecord(b"gone", None),
    ]

    async def produce() -> list[int]:
        log = KafkaEventLog(bootstrap)
        try:
            await log.create_topic(topic)
            return [m.offset for m in await log.produce(topic, sent)]
        finally:
            await log.close()

    assert asyncio.run(produce()) == [0, 1, 2]
    envelopes = kcat_read(bootstrap, topic, len(sent))
    assert [e["offset"] for e in envelopes] == [0, 1, 2]
    assert [e["key"] for e in envelopes] == ["order-1", None, "gone"]
    assert [e["payload"] for e in envelopes] == ['{"total": 12.5, "name": "Zoë"}', "no key", None]
    assert envelopes[0]["headers"] == ["ce_type", "order.created", "trace", "abc"]
    assert envelopes[1]["headers"] == ["x", "1", "x", "2"]
    assert envelopes[0]["ts"] == stamp


def test_kcat_keyed_records_land_where_our_partitioner_says() -> None:
    bootstrap = kafka_bootstrap()
    topic = unique_topic()
    keys = [f"customer-{i}" for i in range(24)]

    async def create() -> None:
        log = KafkaEventLog(bootstrap)
        try:
            await log.create_topic(topic, partitions=5)
        finally:
            await log.close()

    asyncio.run(create())
    lines = "".join(f"{k}|value of {k}\n" for k in keys)
    subprocess.run(
        [
            kcat(),
            "-P",
            "-b",
            bootstrap,
            "-t",
            topic,
            "-K|",
            "-H",
            "source=kcat",
            "-X",
            "partitioner=murmur2_random",
        ],
        input=lines.encode(),
        timeout=30,
        check=True,
    )

    async def read_back() -> list[ConsumedRecord]:
        log = KafkaEventLog(bootstrap)
        try:
            records: list[ConsumedRecord] = []
            for partition in range(5):
                end = await log.latest(topic, partition)
                offset = 0
                while offset < end:
                    fetched = await log.fetch(topic, partition, offset, max_wait=5.0)
                    records.extend(fetched.records)
                    offset = fetched.records[-1].offset + 1
            return records
        finally:
            await log.close()

    records = asyncio.run(read_back())
    assert sorted(r.key or b"" for r in records) == sorted(k.encode() for k in keys)
    for record in records:
        assert record.key is not None
        assert record.partition == partition_for_key(record.key, 5)
        assert record.value == b"value of " + record.key
        assert record.headers == [("source", b"kcat")]
    assert len({r.partition for r in records}) > 1


def test_broker_size_limit_maps_to_record_too_large() -> None:
    bootstrap = kafka_bootstrap()

    async def scenario() -> None:
        log = KafkaEventLog(bootstrap, max_record_bytes=4 * 1024 * 1024)
        try:
            topic = unique_topic()
            await log.create_topic(topic, config={"max.message.bytes": "2000"})
            with pytest.raises(RecordTooLarge):
                await log.produce(topic, [ProduceRecord(value=bytes(5000))], timeout=10)
            assert await log.latest(topic, 0) == 0
            placed = await log.produce(topic, [ProduceRecord(value=bytes(100))], timeout=10)
            assert placed[0].offset == 0
        finally:
            await log.close()

    asyncio.run(scenario())


def test_dead_broker_fails_within_the_timeout() -> None:
    async def scenario() -> None:
        log = KafkaEventLog(
            f"127.0.0.1:{free_port()}",
            client_config={"log_level": 0},  # connection-refused chatter on stderr
            request_timeout=1.0,
            delivery_timeout=1.5,
            close_timeout=0.5,
        )
        try:
            for attempt in (
                log.produce("t", [ProduceRecord(value=b"x")], timeout=1.5),
                log.produce("t", [ProduceRecord(value=b"x")], partition=0, timeout=1.5),
                log.fetch("t", 0, 0, max_wait=0.5),
            ):
                started = time.monotonic()
                with pytest.raises(BrokerUnavailable) as caught:
                    await attempt
                assert time.monotonic() - started < 3.0
                assert caught.value.retry_after > 0
            # metadata known (as after the broker died later): the delivery itself must time out
            log._admin._partition_counts["known"] = (1, time.monotonic() + 60)
            started = time.monotonic()
            with pytest.raises(BrokerUnavailable):
                await log.produce("known", [ProduceRecord(value=b"x")], timeout=1.0)
            assert time.monotonic() - started < 2.0
        finally:
            await log.close()

    asyncio.run(scenario())
