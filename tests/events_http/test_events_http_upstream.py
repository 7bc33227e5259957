"""kafka-upstream with FakeContext on the embedded log: answers, errors, idempotency,
CloudEvents, ACLs, request/reply."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from events_http_kit import (
    SECRET,
    DownLog,
    SlowLog,
    body_json,
    build,
    call,
    close_logs,
    embedded,
    run,
)

from meshgate.events.api import ProduceRecord
from meshgate.proxy.filters.registry import ConfigError
from meshgate.proxy.filters.testing import FakeContext
from meshgate.snapshot import Consumer

RAW = {"topic": "orders", "message_format": "raw", "auto_create_topic": True}


def test_produce_answers_after_the_record_is_stored(tmp_path: Path) -> None:
    async def scenario() -> None:
        res: dict[str, Any] = {}
        h = build("kafka-upstream", embedded(tmp_path, **RAW, record_headers=["X-Trace"],
                                             key_header="X-Key"), res)  # fmt: skip
        ctx = FakeContext("POST", "/o", headers={"content-type": "application/json",
                                                 "x-trace": "t1", "x-key": "k1"},
                          body=b'{"id": 1}')  # fmt: skip
        result = await call(h, ctx)
        assert result.status == 200
        doc = body_json(result)
        assert doc["message"] == "message sent"
        assert doc["topic"] == "orders"
        fetched = await h.event_log.fetch("orders", doc["partition"], doc["offset"])
        (record,) = fetched.records
        assert record.value == b'{"id": 1}'
        assert record.key == b"k1"
        assert record.headers == [("content-type", b"application/json"), ("x-trace", b"t1")]
        await close_logs(res)

    run(scenario())


def test_kong_envelope_is_the_default_message(tmp_path: Path) -> None:
    async def scenario() -> None:
        res: dict[str, Any] = {}
        h = build("kafka-upstream", embedded(tmp_path, topic="t", auto_create_topic=True,
                                             forward_method=True, key_query_arg="k"), res)  # fmt: skip
        result = await call(h, FakeContext("POST", "/x?k=abc", headers={"content-type": "text/plain"},
                                           body=b"hi"))  # fmt: skip
        assert result.status == 200
        (record,) = (await h.event_log.fetch("t", 0, 0)).records
        assert json.loads(record.value or b"") == {"method": "POST", "body": "hi", "body_args": {}}
        assert record.key == b"abc"
        await close_logs(res)

    run(scenario())


def test_unknown_topic_is_404_and_oversized_record_is_413(tmp_path: Path) -> None:
    async def scenario() -> None:
        res: dict[str, Any] = {}
        h = build("kafka-upstream", embedded(tmp_path, topic="missing", message_format="raw",
                                             max_record_bytes=100), res)  # fmt: skip
        result = await call(h, FakeContext("POST", "/", body=b"x"))
        assert result.status == 404
        assert result.headers["meshgate-error"] == ["event-topic-unknown"]
        await h.event_log.create_topic("missing")
        result = await call(h, FakeContext("POST", "/", body=b"x" * 101))
        assert result.status == 413
        assert (await h.event_log.latest("missing", 0)) == 0
        await close_logs(res)

    run(scenario())


@pytest.mark.parametrize("log", [DownLog(), SlowLog()])
def test_log_down_or_slow_is_503_with_retry_after(tmp_path: Path, log: Any) -> None:
    async def scenario() -> None:
        h = build("kafka-upstream", embedded(tmp_path, **RAW, producer_request_timeout=50), {})
        h.event_log = log  # type: ignore[attr-defined]
        result = await call(h, FakeContext("POST", "/", body=b"x"))
        assert result.status == 503
        assert result.headers["meshgate-error"] == ["event-log-unavailable"]
        assert int(result.headers["retry-after"][0]) >= 1

    run(scenario())


def test_async_mode_answers_202_and_stores_later(tmp_path: Path) -> None:
    async def scenario() -> None:
        res: dict[str, Any] = {}
        h = build("kafka-upstream", embedded(tmp_path, **RAW, producer_async=True), res)
        await h.event_log.create_topic("orders")
        result = await call(h, FakeContext("POST", "/", body=b"later"))
        assert result.status == 202
        for _ in range(100):
            if await h.event_log.latest("orders", 0) == 1:
                break
            await asyncio.sleep(0.02)
        assert (await h.event_log.fetch("orders", 0, 0)).records[0].value == b"later"
        await close_logs(res)

    run(scenario())


def test_idempotency_key_replays_and_survives_restart(tmp_path: Path) -> None:
    config = embedded(tmp_path, **RAW)

    async def first_run() -> dict[str, Any]:
        res: dict[str, Any] = {}
        h = build("kafka-upstream", config, res, instance_id="p1")
        headers = {"Idempotency-Key": "abc"}
        one = await call(h, FakeContext("POST", "/", headers=headers, body=b"v"))
        two = await call(h, FakeContext("POST", "/", headers=headers, body=b"v"))
        assert one.body == two.body
        assert two.headers["idempotent-replayed"] == ["true"]
        other = await call(h, FakeContext("POST", "/", headers=headers, body=b"different"))
        assert other.status == 422
        await close_logs(res)
        return body_json(one)

    async def concurrent_and_after_restart(first: dict[str, Any]) -> None:
        res: dict[str, Any] = {}
        h = build("kafka-upstream", config, res, instance_id="p1")
        again = await call(
            h, FakeContext("POST", "/", headers={"Idempotency-Key": "abc"}, body=b"v")
        )
        assert body_json(again) == first
        same = await asyncio.gather(*(
            call(h, FakeContext("POST", "/", headers={"Idempotency-Key": "new"}, body=b"n"))
            for _ in range(5)
        ))  # fmt: skip
        assert len({r.body for r in same}) == 1
        assert await h.event_log.latest("orders", 0) == 2  # "v" once, "n" once
        await close_logs(res)

    first = run(first_run())
    run(concurrent_and_after_restart(first))


def test_cloudevents_binary_and_structured_requests(tmp_path: Path) -> None:
    async def scenario() -> None:
        res: dict[str, Any] = {}
        h = build("kafka-upstream", embedded(tmp_path, topic="ev", auto_create_topic=True), res)
        binary = {"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s", "ce-type": "t",
                  "ce-partitionkey": "pk", "content-type": "application/json"}  # fmt: skip
        assert (await call(h, FakeContext("POST", "/", headers=binary, body=b"{}"))).status == 200
        doc = {"specversion": "1.0", "id": "2", "source": "/s", "type": "t", "data": 1}
        structured = {"content-type": "application/cloudevents+json"}
        body = json.dumps(doc).encode()
        assert (
            await call(h, FakeContext("POST", "/", headers=structured, body=body))
        ).status == 200
        bad = await call(h, FakeContext("POST", "/", headers={"ce-specversion": "1.0"}, body=b""))
        assert bad.status == 400
        one, two = (await h.event_log.fetch("ev", 0, 0)).records
        assert one.key == b"pk"
        assert ("ce_id", b"1") in one.headers
        assert one.value == b"{}"
        assert two.value == body
        assert two.headers == [("content-type", b"application/cloudevents+json")]
        await close_logs(res)

    run(scenario())


def test_topic_acl(tmp_path: Path) -> None:
    alice = Consumer(id="c-alice", username="alice")
    bob = Consumer(id="c-bob", username="bob",
                   credentials={"acls": ({"id": "g1", "group": "writers"},)})  # fmt: skip
    eve = Consumer(id="c-eve", username="eve")

    async def scenario() -> None:
        res: dict[str, Any] = {}
        config = embedded(tmp_path, **RAW, acl={"produce": {"orders": ["alice", "writers"]}})
        h = build("kafka-upstream", config, res, consumers=[alice, bob, eve])
        statuses = [
            (await call(h, FakeContext("POST", "/", consumer=who, body=b"x"))).status
            for who in (alice, bob, eve, None)
        ]
        assert statuses == [200, 200, 403, 401]
        await close_logs(res)

    run(scenario())


def test_config_refuses_lua_and_needs_brokers_for_kafka() -> None:
    for bad in ({"topic": "t", "message_by_lua_functions": ["return 1"]},
                {"topic": "t", "backend": "kafka"},
                {"topic": "t", "forward_body": False}):  # fmt: skip
        with pytest.raises(ConfigError):
            build("kafka-upstream", bad, {})


def _replier(h: Any, request_topic: str, reply_topic: str) -> Any:
    async def reply_once() -> None:
        log = h.event_log
        for _ in range(200):
            if request_topic in await log.list_topics() and await log.latest(request_topic, 0):
                break
            await asyncio.sleep(0.01)
        (request,) = (await log.fetch(request_topic, 0, 0)).records
        cid = dict(request.headers)["meshgate-correlation-id"]
        assert dict(request.headers)["meshgate-reply-to"] == reply_topic.encode()
        await log.produce(reply_topic, [ProduceRecord(value=b'{"ok":true}', headers=(
            ("meshgate-correlation-id", cid), (":status", b"201"),
            ("content-type", b"application/json")))])  # fmt: skip

    return reply_once()


def test_request_reply_sync(tmp_path: Path) -> None:
    async def scenario() -> None:
        res: dict[str, Any] = {}
        h = build("kafka-upstream", embedded(tmp_path, **RAW, reply_topic="replies",
                                             reply_timeout=5000, cursor_secret=SECRET), res)  # fmt: skip
        await h.event_log.create_topic("replies")
        result, _ = await asyncio.gather(call(h, FakeContext("POST", "/o", body=b"q")),
                                         _replier(h, "orders", "replies"))  # fmt: skip
        assert result.status == 201
        assert result.body == b'{"ok":true}'
        assert result.headers["content-type"] == ["application/json"]
        await close_logs(res)

    run(scenario())


def test_request_reply_times_out_with_504(tmp_path: Path) -> None:
    async def scenario() -> None:
        res: dict[str, Any] = {}
        h = build("kafka-upstream", embedded(tmp_path, **RAW, reply_topic="replies",
                                             reply_timeout=100), res)  # fmt: skip
        await h.event_log.create_topic("replies")
        result = await call(h, FakeContext("POST", "/o", body=b"q"))
        assert result.status == 504
        assert await h.event_log.latest("orders", 0) == 1  # the request itself was stored
        await close_logs(res)

    run(scenario())


def test_request_reply_async_poll_from_another_node(tmp_path: Path) -> None:
    async def scenario() -> None:
        res: dict[str, Any] = {}
        config = embedded(tmp_path, **RAW, reply_topic="replies", cursor_secret=SECRET)
        h = build("kafka-upstream", config, res)
        await h.event_log.create_topic("replies")
        accepted = await call(h, FakeContext("POST", "/o", headers={"Prefer": "respond-async"},
                                             body=b"q"))  # fmt: skip
        assert accepted.status == 202
        location = accepted.headers["location"][0]
        assert location.startswith("/o/replies/")
        pending = await call(h, FakeContext("GET", location))
        assert pending.status == 202
        assert pending.headers["retry-after"] == ["1"]
        await _replier(h, "orders", "replies")
        # a second node (fresh node resources, same log, same secret) answers the poll
        other_res: dict[str, Any] = {}
        other = build("kafka-upstream", config, other_res)
        other.event_log = h.event_log  # type: ignore[attr-defined]
        other.replies.log = h.event_log  # type: ignore[attr-defined]
        done = await call(other, FakeContext("GET", location))
        assert done.status == 201
        assert done.body == b'{"ok":true}'
        tampered = await call(h, FakeContext("GET", location[:-3] + "AAA"))
        assert tampered.status == 400
        await close_logs(res)
        await close_logs(other_res)

    run(scenario())
