"""The embedded log's fsync process: rounds written by the loop, synced by a child process.

What must hold: a produce is acknowledged only after the child synced its records, and they are
invisible to readers until then; concurrent produces share the child's syncs; a failed sync
fails the produce and the partition; a child that dies fails the round in flight (never
acknowledges it) and the log carries on with its writer thread; rolls go through the thread.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from meshgate.events.api import ProduceRecord
from meshgate.events.embedded import EmbeddedEventLog
from meshgate.events.embedded.segment import Segment
from meshgate.events.embedded.sync_child import serve
from meshgate.events.embedded.syncer import FsyncProcess
from meshgate.events.errors import EventLogError

Done = Callable[[list[int] | None], None]


async def opened(root: Path, **options: Any) -> tuple[EmbeddedEventLog, FsyncProcess]:
    log = await EmbeddedEventLog.open(root, **options)
    syncer = log._syncer
    assert syncer is not None, "the log starts its fsync process by default"
    assert syncer.usable, "open waits until the fsync process is ready"
    return log, syncer


async def one_record_in(root: Path, value: bytes) -> tuple[EmbeddedEventLog, FsyncProcess]:
    """An opened log whose topic ``t`` holds ``value`` at offset 0."""
    log, syncer = await opened(root)
    await log.create_topic("t")
    await log.produce("t", [ProduceRecord(value=value)], partition=0)
    return log, syncer


async def values_of(log: EmbeddedEventLog, topic: str, partition: int = 0) -> list[bytes]:
    fetched = await log.fetch(topic, partition, 0, max_records=10_000, max_bytes=1 << 30)
    return [r.value or b"" for r in fetched.records]


def count_requests(syncer: FsyncProcess, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Sizes of the sync requests ``syncer`` sends from now on."""
    sizes: list[int] = []
    real = syncer.sync

    def counting(targets: Any, done: Done) -> bool:
        sizes.append(len(targets))
        return real(targets, done)

    monkeypatch.setattr(syncer, "sync", counting)
    return sizes


def test_concurrent_produces_share_the_childs_syncs_and_the_thread_never_syncs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    thread_syncs: list[str] = []
    real_sync = Segment.sync

    def recording_sync(self: Segment) -> None:
        thread_syncs.append(threading.current_thread().name)
        real_sync(self)

    async def scenario() -> None:
        log, syncer = await opened(tmp_path)
        await log.create_topic("t", partitions=2)
        sizes = count_requests(syncer, monkeypatch)
        monkeypatch.setattr(Segment, "sync", recording_sync)
        calls = [log.produce("t", [ProduceRecord(value=b"v%d" % i)], partition=i % 2)
                 for i in range(200)]  # fmt: skip
        placed = await asyncio.gather(*calls)
        assert sorted(m[0].offset for m in placed if m[0].partition == 0) == list(range(100))
        assert 2 <= len(sizes) <= 6, f"group commit: a few sync requests, not {len(sizes)}"
        assert max(sizes) == 2, "one round syncs both partitions in one request"
        assert thread_syncs == []
        assert len(await values_of(log, "t", 1)) == 100
        await log.close()

    asyncio.run(scenario())


def test_records_stay_invisible_until_the_child_synced_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        log, syncer = await one_record_in(tmp_path, b"first")
        answers: list[tuple[Done, list[int] | None]] = []
        answered = asyncio.Event()
        real = syncer.sync

        def held(targets: Any, done: Done) -> bool:  # the answer waits for the test
            def hold(errnos: list[int] | None) -> None:
                answers.append((done, errnos))
                answered.set()

            return real(targets, hold)

        monkeypatch.setattr(syncer, "sync", held)
        producing = asyncio.ensure_future(
            log.produce("t", [ProduceRecord(value=b"second")], partition=0)
        )
        await asyncio.wait_for(answered.wait(), 5)
        assert answers[0][1] == [0], "the child synced the segment"
        assert not producing.done(), "not acknowledged before the loop heard the answer"
        assert await log.latest("t", 0) == 1
        assert await values_of(log, "t") == [b"first"]
        done, errnos = answers[0]
        done(errnos)
        assert [m.offset for m in await producing] == [1]
        assert await values_of(log, "t") == [b"first", b"second"]
        await log.close()

    asyncio.run(scenario())


def test_a_sync_the_child_cannot_do_fails_the_produce_and_the_partition(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        log, _ = await one_record_in(tmp_path, b"kept")
        unsyncable, other_end = os.pipe()  # fdatasync on a pipe: EINVAL, in the child
        monkeypatch.setattr(Segment, "fileno", lambda _self: unsyncable)
        with pytest.raises(EventLogError, match=r"fsync of .* failed"):
            await log.produce("t", [ProduceRecord(value=b"lost")], partition=0)
        monkeypatch.undo()
        os.close(unsyncable)
        os.close(other_end)
        with pytest.raises(EventLogError, match="fsync failed"):
            await log.produce("t", [ProduceRecord(value=b"refused")], partition=0)
        assert await log.latest("t", 0) == 1
        assert await values_of(log, "t") == [b"kept"]
        await log.close()

    asyncio.run(scenario())


def test_a_child_that_dies_mid_round_fails_that_round_and_the_thread_takes_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        log, syncer = await one_record_in(tmp_path, b"before")
        real = syncer.sync

        def then_die(targets: Any, done: Done) -> bool:
            os.kill(syncer._process.pid, signal.SIGSTOP)  # it gets the request, never answers
            sent = real(targets, done)
            syncer._process.kill()
            syncer._process.wait()
            return sent

        monkeypatch.setattr(syncer, "sync", then_die)
        with pytest.raises(EventLogError, match="fsync process is gone"):
            await log.produce("t", [ProduceRecord(value=b"in flight")], partition=0)
        assert syncer.lost is not None
        placed = await log.produce("t", [ProduceRecord(value=b"after")], partition=0)
        assert placed[0].offset == 2, "the unacknowledged record is in the file all the same"
        assert (await values_of(log, "t"))[::2] == [b"before", b"after"]
        await log.close()
        reopened = await EmbeddedEventLog.open(tmp_path, fsync_process=False)
        assert (await values_of(reopened, "t"))[::2] == [b"before", b"after"]
        await reopened.close()

    asyncio.run(scenario())


def test_rolls_go_through_the_thread_and_offsets_stay_consecutive(tmp_path: Path) -> None:
    async def scenario() -> None:
        log, _ = await opened(tmp_path, segment_bytes=4096)
        await log.create_topic("t")
        values = [b"%05d" % i + b"x" * 300 for i in range(120)]
        for start in range(0, 120, 12):  # 12 concurrent produces at a time
            await asyncio.gather(*(
                log.produce("t", [ProduceRecord(value=v)], partition=0)
                for v in values[start : start + 12]
            ))  # fmt: skip
        assert len(list((tmp_path / "t-0").glob("*.log"))) > 5
        assert sorted(await values_of(log, "t")) == values
        await log.close()
        reopened = await EmbeddedEventLog.open(tmp_path)
        assert sorted(await values_of(reopened, "t")) == values
        await reopened.close()

    asyncio.run(scenario())


def test_the_child_syncs_closes_and_answers_each_descriptor(tmp_path: Path) -> None:
    import socket

    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    server = threading.Thread(target=serve, args=(child,), daemon=True)
    server.start()
    assert parent.recv(64) == b"ready"
    good = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT)
    directory = os.open(tmp_path, os.O_RDONLY)
    pipe_r, pipe_w = os.pipe()
    import array

    fds = array.array("i", [good, directory, pipe_r])
    parent.sendmsg([(7).to_bytes(8, "big") + b"dfd"],
                   [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])  # fmt: skip
    answer = parent.recv(64)
    assert answer[:8] == (7).to_bytes(8, "big")
    assert [int.from_bytes(answer[i : i + 4], "big", signed=True) for i in (8, 12, 16)] == [
        0, 0, 22,
    ]  # fmt: skip
    parent.sendmsg([(8).to_bytes(8, "big") + b"dd"])  # kinds without descriptors
    answer = parent.recv(64)
    assert [int.from_bytes(answer[i : i + 4], "big") for i in (8, 12)] == [22, 22]
    parent.close()
    server.join(5)
    assert not server.is_alive(), "the child ends when its socket closes"
    for fd in (good, directory, pipe_r, pipe_w):
        os.close(fd)


def test_a_child_that_never_gets_ready_leaves_the_thread_in_charge(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from meshgate.events.embedded import syncer as syncer_module

    monkeypatch.setattr(syncer_module, "CHILD", tmp_path / "missing.py")  # python exits at once

    async def scenario() -> None:
        log = await EmbeddedEventLog.open(tmp_path / "log")
        assert log._syncer is not None
        assert log._syncer.lost is not None, "its exit was seen while open waited"
        assert not log._syncer.usable
        await log.create_topic("t")
        placed = await log.produce("t", [ProduceRecord(value=b"on the thread")], partition=0)
        assert placed[0].offset == 0
        assert await values_of(log, "t") == [b"on the thread"]
        await log.close()

    asyncio.run(scenario())
