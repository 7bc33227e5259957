"""Real HTTP through a running gateway (live_gateway) on the embedded log: produce with
kafka-upstream and kafka-rest, read with GET, a live SSE stream resumed with Last-Event-ID, a
WebSocket, kafka-log, and a vanished SSE client freeing its stream."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from events_http_kit import SECRET, StreamClient, close_gateway_logs

from meshgate.events.http_api import ws_frames
from meshgate.proxy.filters.testing_http import live_gateway, plugin, route


def _setup(tmp: Path) -> tuple[list[Any], list[Any]]:
    common = {"embedded": {"path": str(tmp)}, "auto_create_topic": True}
    consume = {**common, "topics": [{"name": "orders"}], "cursor_secret": SECRET,
               "auto_offset_reset": "earliest", "heartbeat_interval": 200}  # fmt: skip
    routes = [
        route("produce", "/produce", service=None),
        route("rest", "/kafka", service=None),
        route("get", "/get", service=None),
        route("sse", "/sse", service=None),
        route("ws", "/ws", service=None),
        route("logged", "/r1"),
    ]
    plugins = [
        plugin(
            "kafka-upstream",
            {**common, "topic": "orders", "message_format": "raw", "record_headers": ["x-trace"]},
            route="produce",
        ),
        plugin("kafka-rest", common, route="rest"),
        plugin("kafka-consume", {**consume, "long_poll_timeout": 300}, route="get"),
        plugin("kafka-consume", {**consume, "mode": "server-sent-events"}, route="sse"),
        plugin("kafka-consume", {**consume, "mode": "websocket"}, route="ws"),
        plugin(
            "kafka-log",
            {**common, "topic": "access", "queue": {"max_coalescing_delay": 0.05}},
            route="logged",
        ),
    ]
    return routes, plugins


def test_produce_and_consume_over_real_http(tmp_path: Path) -> None:
    routes, plugins = _setup(tmp_path)
    with live_gateway(plugins=plugins, routes=routes) as gw:
        res = gw.request("POST", "/produce", headers={"Content-Type": "application/json",
                                                      "X-Trace": "abc"}, body=b'{"n":1}')  # fmt: skip
        assert res.status == 200
        assert res.json()["offset"] == 0
        v2 = gw.request(
            "POST",
            "/kafka/topics/orders",
            headers={"Content-Type": "application/vnd.kafka.json.v2+json"},
            body=json.dumps({"records": [{"key": "k", "value": {"n": 2}}]}).encode(),
        )
        assert v2.status == 200
        assert v2.json()["offsets"][0]["offset"] == 1
        v3 = gw.request("POST", "/kafka/v3/clusters/c/topics/orders/records",
                        headers={"Content-Type": "application/json"},
                        body=b'{"value": {"type": "STRING", "data": "three"}}')  # fmt: skip
        assert v3.status == 200
        assert v3.json()["offset"] == 2
        bad = gw.request(
            "POST",
            "/kafka/topics/orders",
            headers={"Content-Type": "application/vnd.kafka.json.v2+json"},
            body=b"{",
        )
        assert bad.status == 400
        assert bad.json()["error_code"] == 40001
        got = gw.request("GET", "/get")
        assert got.status == 200
        records = got.json()["records"]
        assert [r["value"] for r in records] == [{"n": 1}, {"n": 2}, "dGhyZWU="]
        assert records[0]["headers"][1] == {"name": "x-trace", "value": "YWJj"}
        assert records[1]["key"] == '"k"'
        cursor = got.header("meshgate-cursor")
        empty = gw.request("GET", f"/get?cursor={cursor}")
        assert empty.status == 200
        assert empty.json()["records"] == []
        close_gateway_logs(gw)


def test_sse_stream_live_and_resume_with_last_event_id(tmp_path: Path) -> None:
    routes, plugins = _setup(tmp_path)
    with live_gateway(plugins=plugins, routes=routes) as gw:
        for i in range(3):
            assert gw.request("POST", "/produce", body=b'{"i":%d}' % i).status == 200
        stream = StreamClient(gw.port, "/sse", {"Accept": "text/event-stream"})
        assert stream.status == 200
        assert (stream.header("content-type") or "").startswith("text/event-stream")
        assert stream.header("transfer-encoding") == "chunked"
        events = stream.sse_events(3)
        assert [json.loads(e.data)["value"]["i"] for e in events] == [0, 1, 2]
        gw.request("POST", "/produce", body=b'{"i":3}')
        (live,) = stream.sse_events(4)[3:]
        assert json.loads(live.data)["value"]["i"] == 3
        stream.close()
        gw.request("POST", "/produce", body=b'{"i":4}')
        resumed = StreamClient(gw.port, "/sse", {"Last-Event-ID": events[1].last_event_id})
        again = resumed.sse_events(3)
        assert [json.loads(e.data)["value"]["i"] for e in again] == [2, 3, 4]
        resumed.close()
        close_gateway_logs(gw)


def test_websocket_delivery(tmp_path: Path) -> None:
    routes, plugins = _setup(tmp_path)
    with live_gateway(plugins=plugins, routes=routes) as gw:
        gw.request("POST", "/produce", body=b'{"w":1}')
        ws = StreamClient(gw.port, "/ws", {"Connection": "Upgrade", "Upgrade": "websocket",
                                           "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                                           "Sec-WebSocket-Version": "13"})  # fmt: skip
        assert ws.status == 101
        assert ws.header("sec-websocket-accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        ((opcode, payload),) = ws.raw_frames(1)
        assert opcode == ws_frames.OP_TEXT
        assert json.loads(payload)["value"] == {"w": 1}
        gw.request("POST", "/produce", body=b'{"w":2}')
        frames = [f for f in ws.raw_frames(1) if f[0] == ws_frames.OP_TEXT]
        while not frames:
            frames = [f for f in ws.raw_frames(1) if f[0] == ws_frames.OP_TEXT]
        assert json.loads(frames[0][1])["value"] == {"w": 2}
        ws.send(ws_frames.encode_frame(ws_frames.OP_CLOSE, b"\x03\xe8", mask=b"wxyz"))
        closing = ws.raw_frames(1)
        while closing[-1][0] != ws_frames.OP_CLOSE:
            closing = ws.raw_frames(1)
        ws.close()
        close_gateway_logs(gw)


def test_kafka_log_writes_access_logs(tmp_path: Path) -> None:
    routes, plugins = _setup(tmp_path)
    with live_gateway(plugins=plugins, routes=routes) as gw:
        assert gw.request("GET", "/r1/hello").status == 200
        consume = plugin("kafka-consume", {"embedded": {"path": str(tmp_path)},
                                           "topics": [{"name": "access"}],
                                           "auto_offset_reset": "earliest",
                                           "long_poll_timeout": 200}, route="get")  # fmt: skip
        deadline = time.monotonic() + 5
        records: list[Any] = []
        gw.apply(plugins=[*[p for p in plugins if p.route != "get"], consume], routes=routes)
        while not records and time.monotonic() < deadline:
            records = gw.request("GET", "/get").json().get("records", [])
        assert records
        assert records[0]["value"]["request"]["uri"] == "/r1/hello"
        assert records[0]["value"]["response"]["status"] == 200
        close_gateway_logs(gw)


def test_vanished_sse_clients_free_their_streams(tmp_path: Path) -> None:
    from meshgate import tasks

    def streaming() -> int:
        return sum(
            1
            for t in tasks.running()
            if t.get_name() == "plugin kafka-consume route sse" and t.get_loop() is gw.loop
        )

    routes, plugins = _setup(tmp_path)
    with live_gateway(plugins=plugins, routes=routes) as gw:
        gw.request("POST", "/produce", body=b"{}")
        clients = [StreamClient(gw.port, "/sse") for _ in range(5)]
        for client in clients:
            client.sse_events(1)
        assert streaming() == 5
        for client in clients:
            client.close()
        deadline = time.monotonic() + 5
        while streaming() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert streaming() == 0
        close_gateway_logs(gw)
