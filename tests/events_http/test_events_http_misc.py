"""kafka-rest error paths, kafka-log bounds, idempotency store details, shared watchers, the
"nothing answered 2xx that is not stored" rule under a log that goes away, AsyncAPI."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from events_http_kit import body_json, build, call, close_logs, embedded, run

from meshgate.events.api import ProduceRecord
from meshgate.events.embedded import EmbeddedEventLog
from meshgate.events.http_api.asyncapi import asyncapi_document
from meshgate.events.http_api.idempotency import IdempotencyStore, StoredAnswer
from meshgate.events.http_api.watch import Watchers
from meshgate.proxy.filters.testing import FakeContext
from meshgate.snapshot import Listener, PluginInstance, Route, Snapshot

V2 = {"content-type": "application/vnd.kafka.json.v2+json"}


def test_rest_v2_errors_and_partitions(tmp_path: Path) -> None:
    async def scenario() -> None:
        res: dict[str, Any] = {}
        h = build("kafka-rest", embedded(tmp_path, allowed_topics=["a"], max_record_bytes=50), res)
        body = json.dumps({"records": [{"value": 1}]}).encode()
        missing = await call(h, FakeContext("POST", "/k/topics/a", headers=V2, body=body))
        assert missing.status == 404
        assert body_json(missing)["error_code"] == 40401
        await h.event_log.create_topic("a", 2)
        not_allowed = await call(h, FakeContext("POST", "/k/topics/b", headers=V2, body=body))
        assert not_allowed.status == 404
        mixed = json.dumps({"records": [{"value": 1, "partition": 1}, {"value": 2, "partition": 7},
                                        {"value": 3}]}).encode()  # fmt: skip
        partial = body_json(
            await call(h, FakeContext("POST", "/k/topics/a", headers=V2, body=mixed))
        )
        ok1, bad, ok3 = partial["offsets"]
        assert ok1["partition"] == 1
        assert ok1["error_code"] is None
        assert bad["error_code"] == 1
        assert "partition" in bad["error"]
        assert ok3["error_code"] is None
        big = json.dumps({"records": [{"value": "x" * 60}]}).encode()
        assert (
            await call(h, FakeContext("POST", "/k/topics/a", headers=V2, body=big))
        ).status == 413
        media = await call(h, FakeContext("POST", "/k/topics/a", headers={"content-type": "text/plain"},
                                          body=body))  # fmt: skip
        assert media.status == 415
        pinned = await call(
            h, FakeContext("POST", "/k/topics/a/partitions/0", headers=V2, body=body)
        )
        assert body_json(pinned)["offsets"][0]["partition"] == 0
        v3_missing = await call(h, FakeContext("POST", "/k/v3/clusters/x/topics/zz/records",
                                               body=b'{"value": {"data": 1}}'))  # fmt: skip
        assert v3_missing.status == 404
        assert body_json(v3_missing)["error_code"] == 404
        listing = await call(h, FakeContext("GET", "/k/topics"))
        assert body_json(listing) == ["a"]
        described = body_json(await call(h, FakeContext("GET", "/k/topics/a")))
        assert described["name"] == "a"
        assert len(described["partitions"]) == 2
        assert (await call(h, FakeContext("DELETE", "/k/topics/a"))).status == 405
        assert (await call(h, FakeContext("GET", "/k/elsewhere"))).status == 404
        await close_logs(res)

    run(scenario())


def test_v3_records_paths_are_judged_the_same_every_time(tmp_path: Path) -> None:
    async def scenario() -> None:
        res: dict[str, Any] = {}
        h = build("kafka-rest", embedded(tmp_path, allowed_topics=["a"]), res)
        await h.event_log.create_topic("a", 1)
        await h.event_log.create_topic("b", 1)
        one = b'{"value": {"type": "JSON", "data": 1}}'
        for expected_offset in (0, 1):  # the second request reads the remembered path
            ctx = FakeContext("POST", "/k/v3/clusters/x/topics/a/records", body=one)
            stored = body_json(await call(h, ctx))
            assert (stored["error_code"], stored["offset"]) == (200, expected_offset)
        for _ in range(2):  # judged on the path as the router reads it
            ctx = FakeContext("POST", "/k/v3/clusters/x/topics/%61/records", body=one)
            assert body_json(await call(h, ctx))["topic_name"] == "a"
        for _ in range(2):  # a topic not allowed stays refused, remembered or not
            ctx = FakeContext("POST", "/k/v3/clusters/x/topics/b/records", body=one)
            assert (await call(h, ctx)).status == 404
        for n in range(1100):  # many paths: the memo starts over instead of growing
            h._v3_topic(f"/k/v3/clusters/x/topics/t{n}/records")
        assert len(h._v3_topics) <= 1024
        assert h._v3_topic("/k/v3/clusters/x/topics/a/partitions/0") is None  # not /records

    asyncio.run(scenario())


def test_acknowledged_equals_stored_when_the_log_goes_away(tmp_path: Path) -> None:
    async def scenario() -> int:
        res: dict[str, Any] = {}
        h = build("kafka-upstream", embedded(tmp_path, topic="t", message_format="raw",
                                             auto_create_topic=True), res)  # fmt: skip
        await h.event_log.create_topic("t")

        statuses: list[int] = []

        async def worker(w: int) -> None:
            for i in range(20):
                try:
                    ctx = FakeContext("POST", "/", body=b"%d-%d" % (w, i))
                    statuses.append((await call(h, ctx)).status)
                except Exception:  # the engine would answer 500
                    statuses.append(500)
                if statuses.count(200) == 20:
                    await close_logs(res)  # the log goes away mid-load

        await asyncio.gather(*(worker(w) for w in range(5)))
        assert len(statuses) == 100
        assert 503 in statuses
        assert all(s in (200, 503) for s in statuses)
        return statuses.count(200)

    acknowledged = run(scenario())

    async def count() -> int:
        log = await EmbeddedEventLog.open(tmp_path)
        try:
            return await log.latest("t", 0)
        finally:
            await log.close()

    assert run(count()) == acknowledged


def test_idempotency_store_window_and_torn_line(tmp_path: Path) -> None:
    now = [1000.0]
    path = tmp_path / "idem.jsonl"
    calls: list[int] = []

    async def work() -> StoredAnswer:
        calls.append(1)
        return StoredAnswer(200, (("X", "y"),), b"body")

    async def scenario() -> None:
        store = IdempotencyStore(path, 60, clock=lambda: now[0])
        answer, replayed = await store.run("k", "fp", work)
        assert not replayed
        assert answer.body == b"body"
        assert (await store.run("k", "fp", work))[1]
        now[0] += 61
        assert not (await store.run("k", "fp", work))[1]  # expired
        store.close()
        path.write_bytes(path.read_bytes() + b'{"key": "torn", "t": ')
        reopened = IdempotencyStore(path, 60, clock=lambda: now[0])
        answer, replayed = await reopened.run("k", "fp", work)
        assert replayed
        assert answer.headers == (("X", "y"),)
        reopened.close()

    run(scenario())
    assert len(calls) == 2
    assert b"torn" not in path.read_bytes()  # compacted on load


def test_failed_first_request_stores_nothing(tmp_path: Path) -> None:
    async def failing() -> StoredAnswer:
        return StoredAnswer(503, (), b"")

    async def ok() -> StoredAnswer:
        return StoredAnswer(200, (), b"ok")

    async def scenario() -> None:
        store = IdempotencyStore(tmp_path / "i.jsonl", 60)
        assert (await store.run("k", "f", failing))[0].status == 503
        answer, replayed = await store.run("k", "f", ok)
        assert answer.body == b"ok"
        assert not replayed
        store.close()

    run(scenario())


def test_many_waiters_share_one_watcher_and_none_misses_a_record(tmp_path: Path) -> None:
    async def scenario() -> None:
        log = await EmbeddedEventLog.open(tmp_path)
        await log.create_topic("t")
        watchers = Watchers(log, poll_wait=1.0)
        waits = [asyncio.ensure_future(watchers.wait("t", [0], {0: 0}, 5)) for _ in range(200)]
        await asyncio.sleep(0.05)
        assert len(watchers._watchers) == 1
        await log.produce("t", [ProduceRecord(value=b"x")])
        assert all(await asyncio.wait_for(asyncio.gather(*waits), 3))
        # a waiter already behind the end returns at once; one at the end times out
        assert await watchers.wait("t", [0], {0: 0}, 5)
        assert not await watchers.wait("t", [0], {0: 1}, 0.1)
        await watchers.close()
        await log.close()

    run(scenario())


def test_kafka_log_batches_into_json_arrays_and_drops_beyond_the_bound(tmp_path: Path) -> None:
    async def scenario() -> None:
        res: dict[str, Any] = {}
        config = embedded(tmp_path, topic="logs", auto_create_topic=True,
                          queue={"max_batch_size": 3, "max_coalescing_delay": 0.05,
                                 "max_entries": 5})  # fmt: skip
        h = build("kafka-log", config, res)
        for i in range(8):  # queue not started: 5 kept, 3 dropped
            await call(h, FakeContext("GET", f"/x{i}"))
        assert h.queue.dropped == 3  # type: ignore[attr-defined]
        await h.start()
        await h.stop()
        fetched = (await h.event_log.fetch("logs", 0, 0)).records
        batches = [json.loads(r.value or b"") for r in fetched]
        assert [len(b) for b in batches] == [3, 2]
        assert batches[0][0]["request"]["uri"] == "/x0"
        await close_logs(res)

    run(scenario())


def test_asyncapi_document() -> None:
    snap = Snapshot(
        listeners=(Listener(name="proxy", port=8000),),
        routes=(Route(id="r1", name="orders-in", paths=("/orders",), methods=("POST",)),
                Route(id="r2", paths=("/orders/stream",)), Route(id="r3", paths=("/kafka",))),
        plugins=(
            PluginInstance(id="p1", name="kafka-upstream", route="r1", config={"topic": "orders"}),
            PluginInstance(id="p2", name="kafka-consume", route="r2",
                           config={"topics": [{"name": "orders"}], "mode": "server-sent-events"}),
            PluginInstance(id="p3", name="kafka-rest", route="r3",
                           config={"backend": "kafka",
                                   "bootstrap_servers": [{"host": "k", "port": 9092}]}),
            PluginInstance(id="p4", name="key-auth", route="r1"),
        ),
    )  # fmt: skip
    doc = asyncapi_document(snap)
    assert doc["asyncapi"] == "3.0.0"
    assert doc["channels"]["orders"]["address"] == "orders"
    assert doc["channels"]["orders"]["bindings"]["kafka"]["topic"] == "orders"
    ops = doc["operations"]
    send = ops["kafka-upstream-p1-orders"]
    assert send["action"] == "send"
    assert send["channel"] == {"$ref": "#/channels/orders"}
    assert send["x-meshgate-http"]["routes"] == [{"route": "orders-in", "paths": ["/orders"],
                                                  "methods": ["POST"]}]  # fmt: skip
    receive = ops["kafka-consume-p2-orders"]
    assert receive["action"] == "receive"
    assert receive["x-meshgate-http"]["mode"] == "server-sent-events"
    any_topic = [k for k in doc["channels"] if k.startswith("any-topic")]
    assert len(any_topic) == 1
    assert doc["channels"][any_topic[0]]["address"] == "{topic}"
    assert doc["servers"]["kafka-k_9092"]["protocol"] == "kafka"
    assert doc["servers"]["gateway-proxy"]["host"] == "127.0.0.1:8000"
    assert len(ops) == 3
    for op in ops.values():  # every channel reference resolves
        assert op["channel"]["$ref"].removeprefix("#/channels/") in doc["channels"]
