"""Cluster-wide Idempotency-Key under races: the same key sent to several nodes at once is
produced once (the first claim in the idempotency topic wins, the others replay its answer);
a failed or vanished winner hands over; a waiter past its timeout gets 409.

Each store is one node; on the embedded log they share one log, on Kafka each has its own
client of the real broker."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from events_http_kit import kafka_bootstrap

from meshgate.events import open_event_log
from meshgate.events.api import EventLog, ProduceRecord
from meshgate.events.http_api.idempotency import StoredAnswer
from meshgate.events.http_api.idempotency_shared import SharedIdempotencyStore
from meshgate.events.http_api.problems import HttpProblem


class SlowWork:
    """A produce stand-in: takes ``delay`` seconds, counts calls, answers ``status``."""

    def __init__(self, body: bytes, delay: float = 0.2, status: int = 200) -> None:
        self.calls = 0
        self.body, self.delay, self.status = body, delay, status

    async def __call__(self) -> StoredAnswer:
        self.calls += 1
        await asyncio.sleep(self.delay)
        return StoredAnswer(self.status, (), self.body)


def _stores(logs: list[EventLog], topic: str, timeout: float) -> list[SharedIdempotencyStore]:
    return [SharedIdempotencyStore(log, topic, "plugin-1", 3600, timeout=timeout) for log in logs]


async def _close(stores: list[SharedIdempotencyStore]) -> None:
    for store in stores:
        await store.close()


async def _same_key_everywhere(logs: list[EventLog], topic: str) -> None:
    stores = _stores(logs, topic, timeout=20)
    try:
        works = [SlowWork(f'{{"node":{i}}}'.encode()) for i in range(len(stores) * 3)]
        runs = [stores[i % len(stores)].run("race-1", "fp", work) for i, work in enumerate(works)]
        results = await asyncio.gather(*runs)
        assert sum(work.calls for work in works) == 1
        bodies = {answer.body for answer, _ in results}
        assert len(bodies) == 1
        assert sorted(replayed for _, replayed in results) == [False] + [True] * (len(works) - 1)
    finally:
        await _close(stores)


def test_a_key_racing_on_two_nodes_is_produced_once_embedded(tmp_path: Path) -> None:
    async def scenario() -> None:
        log = await open_event_log(str(tmp_path / "log"), auto_create_topics=True)
        try:
            await _same_key_everywhere([log, log], "idem")
        finally:
            await log.close()

    asyncio.run(scenario())


@pytest.mark.services
def test_a_key_racing_on_two_kafka_clients_is_produced_once() -> None:
    bootstrap = kafka_bootstrap()

    async def scenario() -> None:
        logs = [await open_event_log(f"kafka://{bootstrap}") for _ in range(2)]
        try:
            await _same_key_everywhere(logs, f"idem-race-{uuid.uuid4().hex[:10]}")
        finally:
            for log in logs:
                await log.close()

    asyncio.run(scenario())


def test_a_failed_winner_releases_the_key_to_a_waiting_node(tmp_path: Path) -> None:
    async def scenario() -> None:
        log = await open_event_log(str(tmp_path / "log"), auto_create_topics=True)
        stores = _stores([log, log], "idem", timeout=20)
        try:
            failing, succeeding = SlowWork(b"down", status=503), SlowWork(b'{"ok":1}')
            first = asyncio.ensure_future(stores[0].run("k", "fp", failing))
            await asyncio.sleep(0.05)  # node 0 claims first
            second = asyncio.ensure_future(stores[1].run("k", "fp", succeeding))
            (failed, _), (answer, replayed) = await asyncio.gather(first, second)
            assert (failed.status, failing.calls) == (503, 1)
            assert (answer.body, replayed, succeeding.calls) == (b'{"ok":1}', False, 1)
            again, replayed = await stores[0].run("k", "fp", SlowWork(b"never"))
            assert (again.body, replayed) == (b'{"ok":1}', True)
        finally:
            await _close(stores)
            await log.close()

    asyncio.run(scenario())


def test_a_claim_whose_node_vanished_expires_and_a_waiter_takes_over(tmp_path: Path) -> None:
    async def scenario() -> None:
        log = await open_event_log(str(tmp_path / "log"), auto_create_topics=True)
        store = SharedIdempotencyStore(log, "idem", "plugin-1", 3600, timeout=10, claim_ttl=0.5)
        try:
            await store.run("warm-up", "fp", SlowWork(b"{}", delay=0))
            # a claim from a node that died before answering
            orphan = b'{"key":"plugin-1\\nk","claim":"dead-node","t":%f}' % store._clock()
            await log.produce("idem", [ProduceRecord(key=b"~claim\nx", value=orphan)], partition=0)
            work = SlowWork(b'{"ok":2}', delay=0)
            loop = asyncio.get_running_loop()
            started = loop.time()
            answer, replayed = await store.run("k", "fp", work)
            waited = loop.time() - started
            assert (answer.body, replayed, work.calls) == (b'{"ok":2}', False, 1)
            assert 0.3 <= waited < 5, waited
        finally:
            await store.close()
            await log.close()

    asyncio.run(scenario())


def test_a_waiter_past_its_timeout_is_told_the_key_is_in_progress(tmp_path: Path) -> None:
    async def scenario() -> None:
        log = await open_event_log(str(tmp_path / "log"), auto_create_topics=True)
        patient = SharedIdempotencyStore(log, "idem", "plugin-1", 3600, timeout=10)
        hasty = SharedIdempotencyStore(log, "idem", "plugin-1", 3600, timeout=0.5)
        try:
            slow = SlowWork(b'{"ok":3}', delay=1.5)
            first = asyncio.ensure_future(patient.run("k", "fp", slow))
            await asyncio.sleep(0.2)
            with pytest.raises(HttpProblem) as busy:
                await hasty.run("k", "fp", SlowWork(b"never"))
            assert busy.value.status == 409
            assert dict(busy.value.headers or {}).get("Retry-After") == "1"
            answer, replayed = await first
            assert (answer.body, replayed, slow.calls) == (b'{"ok":3}', False, 1)
        finally:
            await patient.close()
            await hasty.close()
            await log.close()

    asyncio.run(scenario())
