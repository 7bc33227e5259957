"""kafka-consume with FakeContext on the embedded log: GET long-poll and cursors, start
positions, SSE with Last-Event-ID resume, WebSocket frames, groups, ACL, CloudEvents."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from events_http_kit import SECRET, body_json, build, call, close_logs, embedded, run

from meshgate.events.api import ProduceRecord
from meshgate.events.http_api import sse, ws_frames
from meshgate.proxy.filters.testing import FakeContext
from meshgate.snapshot import Consumer


def _config(tmp: Path, **extra: Any) -> dict[str, Any]:
    defaults = {"topics": [{"name": "t"}], "cursor_secret": SECRET, "auto_offset_reset": "earliest"}
    return embedded(tmp, **{**defaults, **extra})


async def _fill(
    h: Any, values: list[bytes], partitions: int = 1, timestamps: list[int] | None = None
) -> None:
    log = h.event_log
    if "t" not in await log.list_topics():
        await log.create_topic("t", partitions)
    for i, v in enumerate(values):
        stamp = timestamps[i] if timestamps else None
        await log.produce("t", [ProduceRecord(key=b"k%d" % i, value=v, headers=(("h", b"x"),),
                                              timestamp_ms=stamp)],
                          partition=i % partitions)  # fmt: skip


def test_get_returns_records_and_a_cursor_that_continues(tmp_path: Path) -> None:
    async def scenario() -> None:
        res: dict[str, Any] = {}
        h = build("kafka-consume", _config(tmp_path, max_records=2), res)
        await _fill(h, [b'{"n":0}', b'{"n":1}', b"raw", b'{"n":3}'], partitions=2)
        first = await call(h, FakeContext("GET", "/c"))
        doc = body_json(first)
        assert first.status == 200
        assert len(doc["records"]) == 2
        assert first.headers["meshgate-cursor"] == [doc["cursor"]]
        seen = [(r["partition"], r["offset"]) for r in doc["records"]]
        rest = body_json(await call(h, FakeContext("GET", f"/c?cursor={doc['cursor']}")))
        seen += [(r["partition"], r["offset"]) for r in rest["records"]]
        assert sorted(seen) == [(0, 0), (0, 1), (1, 0), (1, 1)]
        values = {r["offset"] * 2 + r["partition"]: r for r in doc["records"] + rest["records"]}
        assert values[2]["value"] == "cmF3"
        assert values[2]["value_encoding"] == "base64"
        assert values[0]["value"] == {"n": 0}
        assert values[0]["key"] == "k0"
        assert values[0]["headers"] == [{"name": "h", "value": "eA=="}]
        empty = await call(h, FakeContext("GET", f"/c?cursor={rest['cursor']}&timeout=50"))
        assert body_json(empty)["records"] == []
        assert body_json(empty)["cursor"] == rest["cursor"]
        await close_logs(res)

    run(scenario())


def test_long_poll_wakes_when_a_record_arrives(tmp_path: Path) -> None:
    async def scenario() -> None:
        res: dict[str, Any] = {}
        h = build("kafka-consume", _config(tmp_path, auto_offset_reset="latest"), res)
        await _fill(h, [b"old"])
        waiting = asyncio.ensure_future(call(h, FakeContext("GET", "/c?timeout=5000")))
        await asyncio.sleep(0.2)
        assert not waiting.done()
        await h.event_log.produce("t", [ProduceRecord(value=b"new")])
        result = await asyncio.wait_for(waiting, 3)
        assert [r["value_encoding"] for r in body_json(result)["records"]] == ["base64"]
        assert body_json(result)["records"][0]["offset"] == 1
        await close_logs(res)

    run(scenario())


def test_start_positions_and_bad_cursors(tmp_path: Path) -> None:
    async def scenario() -> None:
        res: dict[str, Any] = {}
        h = build("kafka-consume", _config(tmp_path), res)
        await _fill(h, [b"a", b"b", b"c"], timestamps=[1000, 2000, 3000])

        async def offsets(path: str) -> list[int]:
            return [
                r["offset"] for r in body_json(await call(h, FakeContext("GET", path)))["records"]
            ]

        assert await offsets("/c?offset=1&timeout=0") == [1, 2]
        assert await offsets("/c?timestamp=2000&timeout=0") == [1, 2]
        assert await offsets("/c?timestamp=1970-01-01T00:00:02.500Z&timeout=0") == [2]
        assert await offsets("/c?from=latest&timeout=0") == []
        assert await offsets("/c?from=earliest&partition=0&timeout=0") == [0, 1, 2]
        cursor = body_json(await call(h, FakeContext("GET", "/c?timeout=0")))["cursor"]
        for bad in (cursor[:-2] + "xx", "garbage", cursor.replace(".", "")):
            result = await call(h, FakeContext("GET", f"/c?cursor={bad}"))
            assert result.status == 400
            assert result.headers["meshgate-error"] == ["event-bad-cursor"]
        foreign = build("kafka-consume", _config(tmp_path, cursor_secret="another-secret-xyz"), res)
        assert (await call(foreign, FakeContext("GET", f"/c?cursor={cursor}"))).status == 400
        for bad in ("/c?offset=x", "/c?timestamp=yesterday", "/c?from=middle"):
            assert (await call(h, FakeContext("GET", bad))).status == 400
        assert (await call(h, FakeContext("GET", "/c?offset=99"))).status == 416
        assert (await call(h, FakeContext("GET", "/c?topic=other"))).status == 404
        fresh = {"topics": [{"name": "fresh"}]}
        missing = await call(build("kafka-consume", _config(tmp_path, **fresh), res),
                             FakeContext("GET", "/c?timeout=0"))  # fmt: skip
        assert (missing.status, body_json(missing)["message"]) == (404, "topic 'fresh' not found")
        creating = build("kafka-consume", _config(tmp_path, auto_create_topic=True, **fresh), res)
        for _ in range(2):  # created by the first read, then found
            waited = await call(creating, FakeContext("GET", "/c?timeout=0"))
            assert waited.status == 200, waited.body
        assert (await h.event_log.describe_topic("fresh")).partitions == 1
        await close_logs(res)

    run(scenario())


async def _stream_until(
    ctx: FakeContext, task: asyncio.Future[Any], events_wanted: int
) -> list[sse.SseEvent]:
    decoder = sse.SseDecoder()
    events: list[sse.SseEvent] = []
    for _ in range(300):
        await asyncio.sleep(0.01)
        if ctx.answer is not None:
            events = []
            decoder = sse.SseDecoder()
            for piece in ctx.answer.sent:
                events += decoder.feed(piece)
            if len(events) >= events_wanted:
                break
    assert ctx.answer is not None
    ctx.answer.disconnect()
    await asyncio.wait_for(task, 3)
    return events


def test_sse_ids_are_cursors_and_last_event_id_resumes_exactly(tmp_path: Path) -> None:
    async def scenario() -> None:
        res: dict[str, Any] = {}
        h = build("kafka-consume", _config(tmp_path, mode="server-sent-events",
                                           heartbeat_interval=100), res)  # fmt: skip
        await _fill(h, [b'{"i":%d}' % i for i in range(5)], partitions=2)
        ctx = FakeContext("GET", "/s")
        task = asyncio.ensure_future(call(h, ctx))
        events = await _stream_until(ctx, task, 5)
        assert ctx.answer is not None
        assert ctx.answer.status == 200
        assert ctx.answer.headers["Content-Type"].startswith("text/event-stream")
        assert sorted(json.loads(e.data)["value"]["i"] for e in events) == [0, 1, 2, 3, 4]
        # resume after the 2nd event: exactly the 3 others, then live ones
        ctx2 = FakeContext("GET", "/s", headers={"Last-Event-ID": events[1].last_event_id})
        task2 = asyncio.ensure_future(call(h, ctx2))
        await asyncio.sleep(0.05)
        await h.event_log.produce("t", [ProduceRecord(value=b'{"i":5}')], partition=0)
        resumed = await _stream_until(ctx2, task2, 4)
        got = [json.loads(e.data)["value"]["i"] for e in resumed]
        assert sorted(got) == sorted([json.loads(e.data)["value"]["i"] for e in events[2:]] + [5])
        assert ctx2.answer is not None
        assert ctx2.answer.closed
        await close_logs(res)

    run(scenario())


def test_websocket_frames_with_cursor_and_ping(tmp_path: Path) -> None:
    async def scenario() -> None:
        res: dict[str, Any] = {}
        h = build("kafka-consume", _config(tmp_path, mode="websocket"), res)
        await _fill(h, [b'{"w":1}', b'{"w":2}'])
        headers = {"Connection": "Upgrade", "Upgrade": "websocket",
                   "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13"}  # fmt: skip
        ctx = FakeContext("GET", "/w", headers=headers)
        task = asyncio.ensure_future(call(h, ctx))
        for _ in range(200):
            await asyncio.sleep(0.01)
            if ctx.answer is not None and ctx.answer.sent:
                break
        assert ctx.answer is not None
        assert ctx.answer.status == 101
        assert ctx.answer.headers["Sec-WebSocket-Accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        ctx.answer.feed(ws_frames.encode_frame(ws_frames.OP_PING, b"hi", mask=b"abcd"))
        ctx.answer.feed(ws_frames.encode_frame(ws_frames.OP_CLOSE, b"\x03\xe8", mask=b"abcd"))
        await asyncio.wait_for(task, 3)
        frames = b"".join(ctx.answer.sent)
        texts, pongs, closes = [], [], []
        pos = 0
        while pos < len(frames):
            opcode, size = frames[pos] & 0x0F, frames[pos + 1] & 0x7F
            head = 2
            if size == 126:
                size, head = int.from_bytes(frames[pos + 2 : pos + 4], "big"), 4
            payload = frames[pos + head : pos + head + size]
            {ws_frames.OP_TEXT: texts, ws_frames.OP_PONG: pongs, ws_frames.OP_CLOSE: closes,
             ws_frames.OP_PING: []}[opcode].append(payload)  # fmt: skip
            pos += head + size
        docs = [json.loads(t) for t in texts]
        assert [d["value"]["w"] for d in docs] == [1, 2]
        assert all("cursor" in d for d in docs)
        assert pongs == [b"hi"]
        assert closes[0][:2] == b"\x03\xe8"
        await close_logs(res)

    run(scenario())


def test_websocket_without_upgrade_is_426(tmp_path: Path) -> None:
    async def scenario() -> None:
        res: dict[str, Any] = {}
        h = build("kafka-consume", _config(tmp_path, mode="websocket"), res)
        assert (await call(h, FakeContext("GET", "/w"))).status == 426
        await close_logs(res)

    run(scenario())


def test_group_members_on_two_nodes_split_partitions_without_duplicates(tmp_path: Path) -> None:
    async def scenario() -> None:
        res: dict[str, Any] = {}
        node_a = build("kafka-consume", _config(tmp_path, long_poll_timeout=300), res)
        await _fill(node_a, [b"%d" % i for i in range(8)], partitions=2)
        # node b: its own node resources (its own group member) over the same log
        node_b = build("kafka-consume", _config(tmp_path, long_poll_timeout=300), {})
        node_b.event_log = node_a.event_log  # type: ignore[attr-defined]
        node_b.groups.log = node_a.event_log  # type: ignore[attr-defined]
        await call(node_a, FakeContext("GET", "/c?group_id=g&max_records=1&timeout=0"))
        await call(node_b, FakeContext("GET", "/c?group_id=g&max_records=1&timeout=0"))
        seen: list[tuple[int, int]] = []
        for _ in range(6):
            for node in (node_a, node_b):
                doc = body_json(await call(node, FakeContext("GET", "/c?group_id=g&timeout=50")))
                assert doc["group_id"] == "g"
                assert "cursor" not in doc
                seen += [(r["partition"], r["offset"]) for r in doc["records"]]
        # both members' first polls took one record each (committed); the rest came once
        assert len(seen) == len(set(seen)) == 6
        await node_b.groups.close()  # type: ignore[attr-defined]
        await close_logs(res)

    run(scenario())


def test_consume_acl_and_cloudevents_binary_get(tmp_path: Path) -> None:
    reader = Consumer(id="r1", username="reader")

    async def scenario() -> None:
        res: dict[str, Any] = {}
        config = _config(tmp_path, cloudevents="binary", acl={"consume": {"t": ["reader"]}})
        h = build("kafka-consume", config, res, consumers=[reader])
        await h.event_log.create_topic("t")
        await h.event_log.produce("t", [ProduceRecord(value=b'{"x":1}', headers=(
            ("ce_specversion", b"1.0"), ("ce_id", b"9"), ("ce_source", b"/s"), ("ce_type", b"y"),
            ("content-type", b"application/json")))])  # fmt: skip
        assert (await call(h, FakeContext("GET", "/c", consumer=Consumer(id="x")))).status == 403
        result = await call(h, FakeContext("GET", "/c", consumer=reader))
        assert result.status == 200
        assert result.body == b'{"x":1}'
        assert result.headers["ce-id"] == ["9"]
        assert result.headers["content-type"] == ["application/json"]
        cursor = result.headers["meshgate-cursor"][0]
        none = await call(h, FakeContext("GET", f"/c?cursor={cursor}&timeout=0", consumer=reader))
        assert none.status == 204
        await close_logs(res)

    run(scenario())
