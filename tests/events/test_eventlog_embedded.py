"""Embedded log specifics: crash recovery, segments, retention, locking, fsync policy."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from pathlib import Path

import pytest

from meshgate.events.api import ProduceRecord, RecordMetadata
from meshgate.events.embedded import EmbeddedEventLog
from meshgate.events.embedded.partition import CorruptLog
from meshgate.events.embedded.segment import Segment
from meshgate.events.embedded.writer import SerialWriter
from meshgate.events.errors import EventLogError, LogLocked
from meshgate.events.factory import open_event_log


def segments(root: Path, topic: str, partition: int = 0) -> list[Path]:
    return sorted((root / f"{topic}-{partition}").glob("*.log"))


async def produce_values(log: EmbeddedEventLog, topic: str, values: list[bytes]) -> None:
    await log.produce(topic, [ProduceRecord(value=v) for v in values], partition=0)


async def values_of(log: EmbeddedEventLog, topic: str, offset: int = 0) -> list[bytes | None]:
    fetched = await log.fetch(topic, 0, offset, max_records=10_000, max_bytes=1 << 30)
    return [r.value for r in fetched.records]


@pytest.mark.parametrize("damage", ["garbage", "huge-length", "cut"])
def test_restart_truncates_a_torn_tail(tmp_path: Path, damage: str) -> None:
    async def scenario() -> None:
        log = await EmbeddedEventLog.open(tmp_path)
        await log.create_topic("t")
        await produce_values(log, "t", [b"one", b"two", b"three"])
        await log.close()
        last = segments(tmp_path, "t")[-1]
        data = last.read_bytes()
        if damage == "garbage":
            last.write_bytes(data + b"\x00\x00\x00\x30garbage that is not a frame")
            survivors = [b"one", b"two", b"three"]
        elif damage == "huge-length":
            last.write_bytes(data + b"\xff\xff\xff\xf0" + bytes(40))
            survivors = [b"one", b"two", b"three"]
        else:
            last.write_bytes(data[:-3])
            survivors = [b"one", b"two"]
        log = await EmbeddedEventLog.open(tmp_path)
        assert await log.latest("t", 0) == len(survivors)
        assert await values_of(log, "t") == survivors
        placed = await log.produce("t", [ProduceRecord(value=b"after")])
        assert placed[0].offset == len(survivors)
        await log.close()
        log = await EmbeddedEventLog.open(tmp_path)
        assert await values_of(log, "t") == [*survivors, b"after"]
        await log.close()

    asyncio.run(scenario())


def test_corrupt_sealed_segment_refuses_to_open(tmp_path: Path) -> None:
    async def scenario() -> None:
        log = await EmbeddedEventLog.open(tmp_path, segment_bytes=200)
        await log.create_topic("t")
        await produce_values(log, "t", [bytes(60) for _ in range(10)])
        await log.close()
        first = segments(tmp_path, "t")[0]
        data = bytearray(first.read_bytes())
        data[40] ^= 0xFF
        first.write_bytes(bytes(data))
        with pytest.raises(CorruptLog):
            await EmbeddedEventLog.open(tmp_path)

    asyncio.run(scenario())


def test_segments_roll_and_reads_cross_them(tmp_path: Path) -> None:
    async def scenario() -> None:
        log = await EmbeddedEventLog.open(tmp_path, segment_bytes=1000)
        await log.create_topic("t")
        values = [f"value-{i:03d}".encode() * 10 for i in range(60)]
        for start in range(0, 60, 7):
            await produce_values(log, "t", values[start : start + 7])
        assert len(segments(tmp_path, "t")) > 5
        assert await values_of(log, "t") == values
        assert await values_of(log, "t", 37) == values[37:]
        await log.close()
        log = await EmbeddedEventLog.open(tmp_path, segment_bytes=1000)
        assert await values_of(log, "t", 13) == values[13:]
        await log.close()

    asyncio.run(scenario())


def test_retention_by_bytes_moves_the_log_start(tmp_path: Path) -> None:
    async def scenario() -> None:
        log = await EmbeddedEventLog.open(tmp_path)
        await log.create_topic("t", config={"segment.bytes": "1000", "retention.bytes": "3000"})
        for i in range(100):
            await produce_values(log, "t", [f"{i:04d}".encode() * 20])
        start = await log.earliest("t", 0)
        assert start > 0
        total = sum(p.stat().st_size for p in segments(tmp_path, "t"))
        assert total <= 3000 + 2 * 1000
        fetched = await log.fetch("t", 0, 0, max_records=1)
        assert fetched.log_start_offset == start
        assert [r.offset for r in fetched.records] == [start]
        assert await log.offsets_for_time("t", 0, 0) == start
        await log.close()

    asyncio.run(scenario())


def test_retention_by_time_drops_old_sealed_segments(tmp_path: Path) -> None:
    async def scenario() -> None:
        log = await EmbeddedEventLog.open(tmp_path)
        await log.create_topic("t", config={"segment.bytes": "500", "retention.ms": "60000"})
        old = int(time.time() * 1000) - 3_600_000
        await log.produce("t", [ProduceRecord(value=bytes(100), timestamp_ms=old)] * 12)
        await log.produce("t", [ProduceRecord(value=bytes(100))] * 12)
        await log.enforce_retention()
        start = await log.earliest("t", 0)
        assert 0 < start <= 12
        fetched = await log.fetch("t", 0, 0, max_records=100)
        assert fetched.records[0].offset == start
        assert [r.offset for r in fetched.records][-12:] == list(range(12, 24))
        assert all(r.timestamp_ms > old for r in fetched.records[-12:])
        await log.close()

    asyncio.run(scenario())


def test_time_lookup_matches_a_full_scan(tmp_path: Path) -> None:
    generator = random.Random(11)
    base = 1_700_000_000_000
    stamps = [base + generator.randrange(0, 100_000) for _ in range(1500)]

    async def scenario() -> None:
        log = await EmbeddedEventLog.open(tmp_path, segment_bytes=40_000)
        await log.create_topic("t")
        for start in range(0, len(stamps), 100):
            batch = stamps[start : start + 100]
            await log.produce("t", [ProduceRecord(value=bytes(64), timestamp_ms=s) for s in batch])
        for target in [base - 1, base + 100_001, *generator.sample(stamps, 40)]:
            target += generator.choice([-1, 0, 1])
            expected = next((i for i, s in enumerate(stamps) if s >= target), len(stamps))
            assert await log.offsets_for_time("t", 0, target) == expected
        await log.close()

    asyncio.run(scenario())


def test_open_event_log_by_url(tmp_path: Path) -> None:
    async def scenario() -> None:
        log = await open_event_log(f"embedded://{tmp_path}/by-url", auto_create_topics=True)
        await log.produce("t", [ProduceRecord(value=b"v")])
        assert await log.list_topics() == ["t"]
        await log.close()
        with pytest.raises(EventLogError, match="scheme"):
            await open_event_log("redis://nowhere")

    asyncio.run(scenario())


def test_second_owner_is_refused_until_the_first_closes(tmp_path: Path) -> None:
    async def scenario() -> None:
        log = await EmbeddedEventLog.open(tmp_path)
        with pytest.raises(LogLocked, match="owned by process"):
            await EmbeddedEventLog.open(tmp_path)
        await log.close()
        again = await EmbeddedEventLog.open(tmp_path)
        await again.close()

    asyncio.run(scenario())


def test_topics_and_group_offsets_survive_restart(tmp_path: Path) -> None:
    async def scenario() -> None:
        log = await EmbeddedEventLog.open(tmp_path)
        await log.create_topic("t", partitions=2, config={"retention.ms": "60000"})
        await log.commit("g", {("t", 0): 3, ("t", 1): 4})
        await log.commit("g", {("t", 0): 5})
        await log.close()
        offsets_file = tmp_path / "consumer-offsets.jsonl"
        offsets_file.write_bytes(offsets_file.read_bytes() + b'{"g": "g", "t": "t", "p": 1, "o"')
        log = await EmbeddedEventLog.open(tmp_path)
        info = await log.describe_topic("t")
        assert (info.partitions, info.config) == (2, {"retention.ms": "60000"})
        assert await log.committed("g", "t") == {0: 5, 1: 4}
        await log.commit("g", {("t", 1): 9})
        await log.delete_topic("t")
        await log.create_topic("t")
        assert await log.committed("g", "t") == {}
        assert await log.latest("t", 0) == 0
        await log.close()
        log = await EmbeddedEventLog.open(tmp_path)
        assert await log.committed("g", "t") == {}
        await log.close()

    asyncio.run(scenario())


def test_on_the_writer_thread_concurrent_produces_share_fsyncs_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sync_threads: list[str] = []
    real_sync = Segment.sync

    def counting_sync(self: Segment) -> None:
        sync_threads.append(threading.current_thread().name)
        real_sync(self)

    monkeypatch.setattr(Segment, "sync", counting_sync)

    async def scenario() -> None:
        log = await EmbeddedEventLog.open(tmp_path, fsync_process=False)  # the writer thread
        await log.create_topic("t", partitions=2)
        sync_threads.clear()
        calls = [log.produce("t", [ProduceRecord(value=b"v")], partition=i % 2) for i in range(200)]
        placed = await asyncio.gather(*calls)
        assert sorted(m[0].offset for m in placed if m[0].partition == 0) == list(range(100))
        assert 2 <= len(sync_threads) <= 6, "group commit: a few fsyncs for 200 produces"
        assert all(name.startswith("eventlog-writer") for name in sync_threads)
        await log.close()

    asyncio.run(scenario())


def test_a_round_starts_at_the_produce_not_a_loop_turn_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced = threading.Event()
    real_sync = Segment.sync

    def signalling_sync(self: Segment) -> None:
        real_sync(self)
        synced.set()

    async def scenario() -> None:
        log = await EmbeddedEventLog.open(tmp_path, fsync_process=False)  # the writer thread
        await log.create_topic("t")
        monkeypatch.setattr(Segment, "sync", signalling_sync)
        future: asyncio.Future[list[RecordMetadata]] = asyncio.get_running_loop().create_future()
        assert log.produce_into(future, "t", [ProduceRecord(value=b"v")], partition=0)
        # the loop does not turn while this waits: the fsync runs beside it, not after it
        assert synced.wait(5), "the round waited for the loop"
        # the next round does not wait for the loop to hear that the first one ended
        synced.clear()
        second: asyncio.Future[list[RecordMetadata]] = asyncio.get_running_loop().create_future()
        assert log.produce_into(second, "t", [ProduceRecord(value=b"w")], partition=0)
        assert synced.wait(5), "the second round waited for the loop"
        placed = await future
        assert [(m.partition, m.offset) for m in placed] == [(0, 0)]
        assert [(m.partition, m.offset) for m in await second] == [(0, 1)]
        await log.close()

    asyncio.run(scenario())


def test_a_produce_after_the_writer_stopped_fails_with_a_clear_error(tmp_path: Path) -> None:
    async def scenario() -> None:
        log = await EmbeddedEventLog.open(tmp_path, fsync_process=False)  # the writer thread
        await log.create_topic("t")
        writer, stopped = log._committer._writer, SerialWriter("stopped")
        stopped.shutdown()
        log._committer._writer = stopped
        future: asyncio.Future[list[RecordMetadata]] = asyncio.get_running_loop().create_future()
        assert log.produce_into(future, "t", [ProduceRecord(value=b"v")], partition=0)
        with pytest.raises(EventLogError, match="event log closed"):
            await future
        await log._committer.drain()  # idle again: nothing left in flight
        log._committer._writer = writer
        await produce_values(log, "t", [b"after"])
        assert await values_of(log, "t") == [b"after"]
        await log.close()

    asyncio.run(scenario())


def test_on_the_writer_thread_a_failed_fsync_fails_the_produce_and_the_partition(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        log = await EmbeddedEventLog.open(tmp_path, fsync_process=False)  # the writer thread
        await log.create_topic("t")
        await produce_values(log, "t", [b"kept"])

        def broken_sync(self: Segment) -> None:
            raise OSError(5, "Input/output error")

        monkeypatch.setattr(Segment, "sync", broken_sync)
        with pytest.raises(EventLogError, match="fsync"):
            await produce_values(log, "t", [b"lost"])
        monkeypatch.undo()
        with pytest.raises(EventLogError, match="failed"):
            await produce_values(log, "t", [b"refused"])
        assert await log.latest("t", 0) == 1
        assert await values_of(log, "t") == [b"kept"]
        await log.close()

    asyncio.run(scenario())
