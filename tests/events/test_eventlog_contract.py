"""The EventLog contract, run against the embedded log and a real Kafka broker alike."""

from __future__ import annotations

import asyncio
import time

import pytest
from events_helpers import Backend, unique_topic

from meshgate.events.api import ConsumedRecord, EventLog, ProduceRecord
from meshgate.events.errors import (
    OffsetOutOfRange,
    RecordTooLarge,
    TopicAlreadyExists,
    UnknownPartition,
    UnknownTopic,
)
from meshgate.events.partitioner import partition_for_key


async def read_all(log: EventLog, topic: str, partition: int) -> list[ConsumedRecord]:
    """Every record of a partition, from the earliest offset to the high watermark."""
    offset = await log.earliest(topic, partition)
    end = await log.latest(topic, partition)
    records: list[ConsumedRecord] = []
    while offset < end:
        fetched = await log.fetch(topic, partition, offset, max_records=100, max_wait=5.0)
        assert fetched.records, f"no records at {offset} below the end {end}"
        records.extend(fetched.records)
        offset = fetched.records[-1].offset + 1
    return records


def test_produce_assigns_increasing_offsets_per_partition(backend: Backend) -> None:
    async def scenario() -> None:
        async with backend.open() as log:
            topic = unique_topic()
            await log.create_topic(topic, partitions=2)
            first = await log.produce(
                topic, [ProduceRecord(value=b"a"), ProduceRecord(value=b"b")], partition=0
            )
            second = await log.produce(topic, [ProduceRecord(value=b"c")], partition=0)
            other = await log.produce(topic, [ProduceRecord(value=b"d")], partition=1)
            assert [m.offset for m in first + second] == [0, 1, 2]
            assert {m.partition for m in first + second} == {0}
            assert [(m.partition, m.offset) for m in other] == [(1, 0)]
            assert all(m.topic == topic and m.timestamp > 0 for m in first + second + other)
            assert await log.latest(topic, 0) == 3
            assert await log.latest(topic, 1) == 1
            assert await log.earliest(topic, 0) == 0

    asyncio.run(scenario())


def test_fetch_from_offset_earliest_and_latest(backend: Backend) -> None:
    async def scenario() -> None:
        async with backend.open() as log:
            topic = unique_topic()
            await log.create_topic(topic)
            values = [f"v{i}".encode() for i in range(10)]
            await log.produce(topic, [ProduceRecord(value=v) for v in values])
            middle = await log.fetch(topic, 0, 4, max_records=3, max_wait=5.0)
            assert [r.offset for r in middle.records] == [4, 5, 6]
            assert [r.value for r in middle.records] == values[4:7]
            assert middle.high_watermark == 10
            assert middle.log_start_offset == 0
            everything = await read_all(log, topic, 0)
            assert [r.value for r in everything] == values
            at_end = await log.fetch(topic, 0, await log.latest(topic, 0), max_wait=0.1)
            assert at_end.records == []
            assert at_end.high_watermark == 10
            with pytest.raises(OffsetOutOfRange):
                await log.fetch(topic, 0, 11, max_wait=0.1)

    asyncio.run(scenario())


def test_weaker_acks_still_store_in_order(backend: Backend) -> None:
    async def scenario() -> None:
        async with backend.open() as log:
            topic = unique_topic()
            await log.create_topic(topic)
            unacked = await log.produce(topic, [ProduceRecord(value=b"none")], acks="none")
            assert [(m.partition, m.offset) for m in unacked] == [(0, -1)]
            leader = await log.produce(topic, [ProduceRecord(value=b"leader")], acks="leader")
            assert [m.offset for m in leader] == [1]
            durable = await log.produce(topic, [ProduceRecord(value=b"all")])
            assert [m.offset for m in durable] == [2]
            assert [r.value for r in await read_all(log, topic, 0)] == [b"none", b"leader", b"all"]

    asyncio.run(scenario())


def test_fetch_respects_max_bytes_but_returns_at_least_one_record(backend: Backend) -> None:
    async def scenario() -> None:
        async with backend.open() as log:
            topic = unique_topic()
            await log.create_topic(topic)
            await log.produce(topic, [ProduceRecord(value=bytes(1000)) for _ in range(5)])
            small = await log.fetch(topic, 0, 0, max_bytes=10, max_wait=5.0)
            assert [r.offset for r in small.records] == [0]
            some = await log.fetch(topic, 0, 1, max_bytes=2500, max_wait=5.0)
            assert 1 <= len(some.records) <= 2
            assert some.records[0].offset == 1

    asyncio.run(scenario())


def test_keys_headers_and_timestamps_round_trip(backend: Backend) -> None:
    async def scenario() -> None:
        async with backend.open() as log:
            topic = unique_topic()
            await log.create_topic(topic)
            stamp = int(time.time() * 1000) - 60_000
            sent = [
                ProduceRecord(
                    b"key-1",
                    b"\x00\xffbinary",
                    [("h1", b"v1"), ("h1", b"again"), ("bin", b"\x00\x01")],
                    stamp,
                ),
                ProduceRecord(None, b"no key"),
                ProduceRecord(b"tombstone", None, [("ce_type", "é".encode())]),
                ProduceRecord(b"", b""),
            ]
            placed = await log.produce(topic, sent, partition=0)
            assert placed[0].timestamp == stamp
            got = await read_all(log, topic, 0)
            assert [(r.key, r.value, r.headers) for r in got] == [
                (s.key, s.value, list(s.headers)) for s in sent
            ]
            assert got[0].timestamp_ms == stamp
            assert [r.timestamp_ms for r in got] == [m.timestamp for m in placed]
            assert all(r.topic == topic and r.partition == 0 for r in got)

    asyncio.run(scenario())


def test_same_key_lands_in_the_murmur2_partition(backend: Backend) -> None:
    async def scenario() -> None:
        async with backend.open() as log:
            topic = unique_topic()
            await log.create_topic(topic, partitions=6)
            keys = [f"user-{i}".encode() for i in range(30)]
            placed = await log.produce(topic, [ProduceRecord(k, b"x") for k in keys])
            again = await log.produce(topic, [ProduceRecord(k, b"y") for k in reversed(keys)])
            expected = [partition_for_key(k, 6) for k in keys]
            assert [m.partition for m in placed] == expected
            assert [m.partition for m in reversed(again)] == expected
            assert len(set(expected)) > 1

    asyncio.run(scenario())


def test_keyless_records_stick_to_one_partition_per_call(backend: Backend) -> None:
    async def scenario() -> None:
        async with backend.open() as log:
            topic = unique_topic()
            await log.create_topic(topic, partitions=3)
            calls = [await log.produce(topic, [ProduceRecord(value=b"v")] * 4) for _ in range(3)]
            for call in calls:
                assert len({m.partition for m in call}) == 1
            assert {call[0].partition for call in calls} == {0, 1, 2}

    asyncio.run(scenario())


def test_long_poll_fetch_wakes_on_produce(backend: Backend) -> None:
    async def scenario() -> None:
        async with backend.open() as log:
            topic = unique_topic()
            await log.create_topic(topic)
            await log.produce(topic, [ProduceRecord(value=b"old")])
            started = time.monotonic()
            waiting = asyncio.ensure_future(log.fetch(topic, 0, 1, max_wait=30.0))
            await asyncio.sleep(0.3)
            assert not waiting.done()
            await log.produce(topic, [ProduceRecord(value=b"new")])
            fetched = await asyncio.wait_for(waiting, 20)
            assert [r.value for r in fetched.records] == [b"new"]
            assert time.monotonic() - started < 15
            started = time.monotonic()
            empty = await log.fetch(topic, 0, 2, max_wait=0.3)
            assert empty.records == []
            assert time.monotonic() - started >= 0.25

    asyncio.run(scenario())


def test_offsets_for_time(backend: Backend) -> None:
    async def scenario() -> None:
        async with backend.open() as log:
            topic = unique_topic()
            await log.create_topic(topic)
            base = int(time.time() * 1000) - 10_000
            stamps = [base, base + 1000, base + 1000, base + 3000]
            await log.produce(topic, [ProduceRecord(value=b"v", timestamp_ms=s) for s in stamps])
            assert await log.offsets_for_time(topic, 0, base - 5) == 0
            assert await log.offsets_for_time(topic, 0, base) == 0
            assert await log.offsets_for_time(topic, 0, base + 1) == 1
            assert await log.offsets_for_time(topic, 0, base + 1000) == 1
            assert await log.offsets_for_time(topic, 0, base + 2000) == 3
            assert await log.offsets_for_time(topic, 0, base + 5000) == 4

    asyncio.run(scenario())


def test_offsets_for_time_with_out_of_order_timestamps(backend: Backend) -> None:
    async def scenario() -> None:
        async with backend.open() as log:
            topic = unique_topic()
            await log.create_topic(topic)
            base = int(time.time() * 1000) - 20_000
            stamps = [base + 5000, base + 1000, base + 7000, base + 3000]
            await log.produce(topic, [ProduceRecord(value=b"v", timestamp_ms=s) for s in stamps])
            assert await log.offsets_for_time(topic, 0, base + 2000) == 0
            assert await log.offsets_for_time(topic, 0, base + 6000) == 2
            assert await log.offsets_for_time(topic, 0, base + 7001) == 4

    asyncio.run(scenario())


def test_group_offsets_commit_and_read_back(backend: Backend) -> None:
    async def scenario() -> None:
        async with backend.open() as log:
            topic = unique_topic()
            await log.create_topic(topic, partitions=3)
            group = unique_topic("mg-group")
            assert await log.committed(group, topic) == {}
            await log.commit(group, {(topic, 0): 5, (topic, 2): 7})
            assert await log.committed(group, topic) == {0: 5, 2: 7}
            await log.commit(group, {(topic, 0): 6})
            assert await log.committed(group, topic) == {0: 6, 2: 7}
            assert await log.committed(unique_topic("mg-other"), topic) == {}

    asyncio.run(scenario())


def test_unknown_topic_and_partition(backend: Backend) -> None:
    async def scenario() -> None:
        async with backend.open() as log:
            missing = unique_topic()
            with pytest.raises(UnknownTopic):
                await log.produce(missing, [ProduceRecord(value=b"x")], timeout=10)
            with pytest.raises(UnknownTopic):
                await log.fetch(missing, 0, 0)
            with pytest.raises(UnknownTopic):
                await log.describe_topic(missing)
            with pytest.raises(UnknownTopic):
                await log.committed("g", missing)
            assert missing not in await log.list_topics()
            topic = unique_topic()
            await log.create_topic(topic, partitions=2)
            with pytest.raises(UnknownPartition):
                await log.produce(topic, [ProduceRecord(value=b"x")], partition=2)
            with pytest.raises(UnknownPartition):
                await log.fetch(topic, 5, 0)

    asyncio.run(scenario())


def test_auto_create_topics_on_produce(backend: Backend) -> None:
    async def scenario() -> None:
        async with backend.open(auto_create_topics=True, default_partitions=2) as log:
            topic = unique_topic()
            placed = await log.produce(topic, [ProduceRecord(b"k", b"v")])
            assert placed[0].partition == partition_for_key(b"k", 2)
            assert (await log.describe_topic(topic)).partitions == 2
            assert topic in await log.list_topics()

    asyncio.run(scenario())


def test_topic_admin(backend: Backend) -> None:
    async def scenario() -> None:
        async with backend.open() as log:
            topic = unique_topic()
            info = await log.create_topic(topic, partitions=3, config={"retention.ms": "86400000"})
            assert (info.name, info.partitions) == (topic, 3)
            described = await log.describe_topic(topic)
            assert described.partitions == 3
            assert described.config.get("retention.ms") == "86400000"
            assert topic in await log.list_topics()
            with pytest.raises(TopicAlreadyExists):
                await log.create_topic(topic)
            await log.delete_topic(topic)
            assert topic not in await log.list_topics()

    asyncio.run(scenario())


def test_too_large_record_is_refused_whole(backend: Backend) -> None:
    async def scenario() -> None:
        async with backend.open() as log:
            topic = unique_topic()
            await log.create_topic(topic)
            batch = [ProduceRecord(value=b"small"), ProduceRecord(value=bytes(2 * 1024 * 1024))]
            with pytest.raises(RecordTooLarge) as caught:
                await log.produce(topic, batch)
            assert caught.value.limit == 1024 * 1024
            assert await log.latest(topic, 0) == 0

    asyncio.run(scenario())


def test_group_members_share_partitions_without_duplicates(backend: Backend) -> None:
    async def scenario() -> None:
        async with backend.open() as log:
            topic = unique_topic()
            await log.create_topic(topic, partitions=4)
            group = unique_topic("mg-group")
            first = await log.join_group(group, [topic])
            second = await log.join_group(group, [topic])
            everything = {(topic, p) for p in range(4)}
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                # nothing to read yet: polling only lets the group settle
                assert await asyncio.gather(first.poll(10, 0.1), second.poll(10, 0.1)) == [[], []]
                mine, theirs = set(first.assignment()), set(second.assignment())
                if mine and theirs and not mine & theirs and mine | theirs == everything:
                    break
            assert first.assignment()
            assert second.assignment()
            assert set(first.assignment()) | set(second.assignment()) == everything
            sent = {f"r{i}".encode() for i in range(40)}
            await log.produce(topic, [ProduceRecord(v, v) for v in sorted(sent)])
            received: list[list[ConsumedRecord]] = [[], []]
            while time.monotonic() < deadline and sum(len(b) for b in received) < len(sent):
                polled = await asyncio.gather(first.poll(100, 0.2), second.poll(100, 0.2))
                for bucket, records in zip(received, polled, strict=True):
                    bucket.extend(records)
            for member, bucket in zip((first, second), received, strict=True):
                assert {(r.topic, r.partition) for r in bucket} <= set(member.assignment())
            values = [r.value for bucket in received for r in bucket]
            assert sorted(values) == sorted(sent), "every record exactly once"
            await first.commit()
            await second.commit()
            await first.leave()
            await second.leave()
            committed = await log.committed(group, topic)
            assert sum(committed.values()) == len(sent)
            await log.produce(topic, [ProduceRecord(b"late", b"late")])
            third = await log.join_group(group, [topic])
            late: list[ConsumedRecord] = []
            deadline = time.monotonic() + 20
            while not late and time.monotonic() < deadline:
                late = await third.poll(100, 0.5)
            assert [r.value for r in late] == [b"late"]
            await third.leave()

    asyncio.run(scenario())
