"""``produce_into``, the backends' fast path: resolves only once stored, declines what it cannot
take without side effects, leaves an abandoned future alone, fails with the log's errors."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from events_helpers import Backend, unique_topic

from meshgate.events.api import ProduceInto, ProduceRecord, RecordMetadata
from meshgate.events.embedded import EmbeddedEventLog
from meshgate.events.embedded.partition import PartitionLog, PartitionSettings
from meshgate.events.embedded.segment import Segment
from meshgate.events.errors import EventLogError, RecordTooLarge, UnknownPartition
from meshgate.events.partitioner import partition_for_key


def _fast(log: object) -> ProduceInto:
    assert isinstance(log, ProduceInto)
    return log


async def _values(log: object, topic: str, partition: int = 0) -> list[bytes | None]:
    fetched = await log.fetch(topic, partition, 0, max_records=100)  # type: ignore[attr-defined]
    return [r.value for r in fetched.records]


def test_produce_into_resolves_once_stored(backend: Backend) -> None:
    async def scenario() -> None:
        topic = unique_topic()
        async with backend.open() as log:
            await log.create_topic(topic)
            await log.produce(topic, [ProduceRecord(value=b"first")])  # metadata now known
            future: asyncio.Future[list[RecordMetadata]] = asyncio.Future()
            records = [ProduceRecord(value=b"a"), ProduceRecord(key=b"k", value=b"b")]
            assert _fast(log).produce_into(future, topic, records, partition=0)
            metas = await asyncio.wait_for(future, 20)
            assert [(m.topic, m.partition, m.offset) for m in metas] == [
                (topic, 0, 1),
                (topic, 0, 2),
            ]
            assert await log.latest(topic, 0) == 3
            assert await _values(log, topic) == [b"first", b"a", b"b"]

    asyncio.run(scenario())


def test_produce_into_declines_what_it_cannot_take(backend: Backend) -> None:
    async def scenario() -> None:
        topic = unique_topic()
        async with backend.open() as log:
            future: asyncio.Future[list[RecordMetadata]] = asyncio.Future()
            one = [ProduceRecord(value=b"x")]
            assert not _fast(log).produce_into(future, topic, one)  # unknown topic: no create
            assert topic not in await log.list_topics()
            await log.create_topic(topic, 4)
            await log.produce(topic, one)
            keys = [b"k%d" % i for i in range(40)]
            spread = [k for k in keys if partition_for_key(k, 4) != partition_for_key(keys[0], 4)]
            mixed = [ProduceRecord(key=keys[0], value=b"1"), ProduceRecord(key=spread[0])]
            assert not _fast(log).produce_into(future, topic, mixed)
            with pytest.raises(UnknownPartition):
                _fast(log).produce_into(future, topic, one, partition=9)
            big = [ProduceRecord(value=bytes(2 * 1024 * 1024))]
            with pytest.raises(RecordTooLarge):
                _fast(log).produce_into(future, topic, big)
            assert not future.done()

    asyncio.run(scenario())


def test_an_abandoned_future_is_left_alone_and_its_records_stored(tmp_path: Path) -> None:
    async def scenario() -> None:
        log = await EmbeddedEventLog.open(f"{tmp_path}/log")
        await log.create_topic("t")
        future: asyncio.Future[list[RecordMetadata]] = asyncio.get_running_loop().create_future()
        assert log.produce_into(future, "t", [ProduceRecord(value=b"left")])
        future.cancel()  # the HTTP client went away before the commit
        await log.produce("t", [ProduceRecord(value=b"next")])
        assert await _values(log, "t") == [b"left", b"next"]
        await log.close()

    asyncio.run(scenario())


def test_a_failed_fsync_fails_the_future(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_sync(self: Segment) -> None:
        raise OSError("disk gone")

    async def scenario() -> None:
        # the writer thread's fsync; the fsync process's: test_eventlog_fsync_process
        log = await EmbeddedEventLog.open(f"{tmp_path}/log", fsync_process=False)
        await log.create_topic("t")
        monkeypatch.setattr(Segment, "sync", broken_sync)
        future: asyncio.Future[list[RecordMetadata]] = asyncio.get_running_loop().create_future()
        assert log.produce_into(future, "t", [ProduceRecord(value=b"lost")])
        with pytest.raises(EventLogError, match="fsync"):
            await future
        monkeypatch.undo()
        assert await log.latest("t", 0) == 0  # never published to readers
        await log.close()

    asyncio.run(scenario())


def test_one_write_for_many_produces_and_a_bad_record_fails_alone(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path / "t-0", "t", 0, PartitionSettings())
    writes: list[int] = []
    real_write = Segment.append

    def counting_write(segment: Segment, data: bytes, frames: list[tuple[int, int, int]]) -> None:
        writes.append(len(frames))
        real_write(segment, data, frames)

    bad_header: Any = [("h", "text, not bytes")]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Segment, "append", counting_write)
        outcomes = log.append_batches(
            [[(None, b"a", (), 5)], [(None, b"bad", bad_header, 6)], [(b"k", b"b", (), 7)]]
        )
    assert outcomes[0] == [(0, 5)]
    assert outcomes[2] == [(1, 7)]
    assert isinstance(outcomes[1], EventLogError)
    assert writes == [2]
    log.sync()
    assert [(r.offset, r.value) for r in log.read(0, 10, 1 << 20)] == [(0, b"a"), (1, b"b")]
    log.close()
