"""Many streams at the same position cost one read and one render: ``Watchers.fetch`` shares
concurrent identical reads (errors reach every caller), ``BlockCache`` renders a block once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from meshgate.events.api import ConsumedRecord, FetchResult
from meshgate.events.errors import BrokerUnavailable
from meshgate.events.http_api.cursor import Cursor, CursorCodec
from meshgate.events.http_api.streams import BlockCache
from meshgate.events.http_api.watch import Watchers


class CountingLog:
    def __init__(self, fail: bool = False) -> None:
        self.fetches = 0
        self.fail = fail

    async def fetch(self, topic: str, partition: int, offset: int, **kw: Any) -> FetchResult:
        self.fetches += 1
        await asyncio.sleep(0.01)
        if self.fail:
            raise BrokerUnavailable("down")
        record = ConsumedRecord(topic, partition, offset, 1, None, b"v")
        return FetchResult([record], offset + 1, 0)


def test_concurrent_identical_fetches_read_once() -> None:
    async def scenario() -> None:
        log = CountingLog()
        watchers = Watchers(log)  # type: ignore[arg-type]
        results = await asyncio.gather(*(watchers.fetch("t", 0, 5, 100, 1 << 20)
                                         for _ in range(200)))  # fmt: skip
        assert log.fetches == 1
        assert {r.records[0].offset for r in results} == {5}
        await watchers.fetch("t", 0, 6, 100, 1 << 20)  # another position: its own read
        await watchers.fetch("t", 0, 5, 100, 1 << 20)  # done reads are not cached
        assert log.fetches == 3
        await watchers.close()

    asyncio.run(scenario())


def test_a_shared_fetch_error_reaches_every_caller() -> None:
    async def scenario() -> None:
        log = CountingLog(fail=True)
        watchers = Watchers(log)  # type: ignore[arg-type]
        results = await asyncio.gather(*(watchers.fetch("t", 0, 0, 10, 100) for _ in range(5)),
                                       return_exceptions=True)  # fmt: skip
        assert log.fetches == 1
        assert all(isinstance(r, BrokerUnavailable) for r in results)
        await watchers.close()

    asyncio.run(scenario())


def test_block_cache_renders_once_per_position() -> None:
    codec = CursorCodec(b"0123456789abcdef-secret")
    renders: list[int] = []

    def render(record: ConsumedRecord) -> Any:
        renders.append(record.offset)
        return {"offset": record.offset}

    cache = BlockCache(size=2)
    records = [ConsumedRecord("t", 0, 3, 1, None, b"a"), ConsumedRecord("t", 0, 4, 1, None, b"b")]
    start = Cursor("t", {0: 3})
    first = cache.get(records, start, codec, render)
    assert cache.get(list(records), Cursor("t", {0: 3}), codec, render) == first
    assert renders == [3, 4]
    changed = [records[0], ConsumedRecord("t", 0, 4, 1, None, b"other")]  # same offset, new data
    cache.get(changed, start, codec, render)
    assert renders == [3, 4, 3, 4]  # rendered anew, not served from the cache
    for offset in (10, 11, 12):  # evicts the oldest beyond size
        cache.get([ConsumedRecord("t", 0, offset, 1, None, b"x")], Cursor("t", {0: offset}),
                  codec, render)  # fmt: skip
    cache.get(records, start, codec, render)
    assert renders.count(3) == 3  # evicted, so rendered again


@pytest.mark.parametrize("codec_on", [True, False])
def test_block_cache_matches_direct_render(codec_on: bool) -> None:
    from meshgate.events.http_api.streams import sse_block

    codec = CursorCodec(b"0123456789abcdef-secret") if codec_on else None
    records = [ConsumedRecord("t", 0, 7, 1, None, b"a")]
    start = Cursor("t", {0: 7}) if codec_on else None
    cache = BlockCache()
    assert cache.get(records, start, codec, lambda r: r.offset) == sse_block(
        records, start, codec, lambda r: r.offset
    )


class FetchCounter:
    """The real embedded log, counting the reads without wait (the watcher's long-poll aside)."""

    def __init__(self, log: Any) -> None:
        self.log = log
        self.reads: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.log, name)

    async def fetch(self, topic: str, partition: int, offset: int, **kw: Any) -> FetchResult:
        if not kw.get("max_wait"):
            self.reads.append(offset)
        result: FetchResult = await self.log.fetch(topic, partition, offset, **kw)
        return result


def test_a_new_record_reaches_waiting_readers_through_one_read(tmp_path: Any) -> None:
    from meshgate.events import open_event_log
    from meshgate.events.api import ProduceRecord
    from meshgate.events.http_api.consume import Reader

    async def scenario() -> None:
        real = await open_event_log(str(tmp_path / "log"), auto_create_topics=True)
        await real.create_topic("t", 1)
        log = FetchCounter(real)
        watchers = Watchers(log, poll_wait=0.2)
        try:
            readers = [Reader(log, Cursor("t", {0: 0}), watchers) for _ in range(100)]
            waiting = [asyncio.ensure_future(r.read(10, max_wait=5)) for r in readers]
            await asyncio.sleep(0.3)  # every reader found nothing and waits
            log.reads.clear()
            shared_reads: list[object] = []
            share = watchers._fetch_into

            async def counted(*args: Any) -> None:
                shared_reads.append(args)
                await share(*args)

            watchers._fetch_into = counted  # type: ignore[method-assign,assignment]
            await real.produce("t", [ProduceRecord(key=None, value=b"hello")], partition=0)
            batches = await asyncio.gather(*waiting)
            assert all([r.value for r in batch] == [b"hello"] for batch in batches)
            assert log.reads == [0]  # the watcher's read, served to all 100 ...
            assert shared_reads == []  # ... as they woke: no shared read task, no future each
            assert all(r.cursor.positions == {0: 1} for r in readers)
            # served up to the end the watcher knows: the next read waits without reading
            assert await asyncio.gather(*(r.read(10) for r in readers)) == [[]] * 100
            assert log.reads == [0]
        finally:
            await watchers.close()
            await real.close()

    asyncio.run(scenario())
