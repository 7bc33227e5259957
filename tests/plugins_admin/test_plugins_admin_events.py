"""Event plugins configured through the Admin API of a store-backed node, on the embedded log:
records produced with kafka-upstream and kafka-rest, and access logs written by kafka-log,
are read back over HTTP with kafka-consume."""

from __future__ import annotations

import json
import time
from typing import Any

from plugins_admin_kit import AdminNode

SECRET = "a-cursor-secret-for-the-admin-tests"


def _log(admin_node: AdminNode, **extra: Any) -> dict[str, Any]:
    return {"embedded": {"path": str(admin_node.tmp / "events")}, **extra}


def _consume_route(admin_node: AdminNode, topic: str) -> str:
    config = _log(admin_node, topics=[{"name": topic}], cursor_secret=SECRET,
                  auto_offset_reset="earliest", long_poll_timeout=200)  # fmt: skip
    return admin_node.plugin_route("kafka-consume", config, route=f"read-{topic}", service=None)


def _records(admin_node: AdminNode, path: str, want: int) -> list[Any]:
    """The records a GET on the consume route returns, once there are ``want`` of them
    (kafka-log writes from a queue, so its topic may not exist yet: 404; the deadline only
    bounds a broken delivery)."""
    deadline = time.monotonic() + 10
    while True:
        status, _, body = admin_node.json("GET", path)
        assert status in (200, 404), body
        records: list[Any] = body.get("records", [])
        if len(records) >= want or time.monotonic() > deadline:
            assert status == 200, body
            return records
        time.sleep(0.02)


def test_kafka_upstream_produces_and_kafka_consume_reads_back(admin_node: AdminNode) -> None:
    config = _log(admin_node, topic="orders", message_format="raw", auto_create_topic=True)
    produce = admin_node.plugin_route("kafka-upstream", config, service=None)
    status, _, body = admin_node.json("POST", produce, {"Content-Type": "application/json"},
                                      b'{"id": 1}')  # fmt: skip
    assert status == 200, body
    assert body["offset"] == 0
    assert admin_node.json("POST", produce, None, b'{"id": 2}')[0] == 200
    read = _consume_route(admin_node, "orders")
    status, headers, body = admin_node.json("GET", read)
    assert status == 200
    assert [r["value"] for r in body["records"]] == [{"id": 1}, {"id": 2}]
    status, _, body = admin_node.json("GET", f"{read}?cursor={headers['meshgate-cursor']}")
    assert (status, body["records"]) == (200, [])


def test_kafka_rest_produces_v2_records(admin_node: AdminNode) -> None:
    rest = admin_node.plugin_route("kafka-rest", _log(admin_node, auto_create_topic=True),
                                   service=None)  # fmt: skip
    records = {"records": [{"key": "k", "value": {"n": 1}}, {"value": {"n": 2}}]}
    status, _, body = admin_node.json(
        "POST", f"{rest}/topics/rest-topic",
        {"Content-Type": "application/vnd.kafka.json.v2+json"}, json.dumps(records).encode(),
    )  # fmt: skip
    assert status == 200, body
    assert [o["offset"] for o in body["offsets"]] == [0, 1]
    read = _consume_route(admin_node, "rest-topic")
    assert [r["value"] for r in _records(admin_node, read, 2)] == [{"n": 1}, {"n": 2}]


def test_kafka_log_writes_access_records(admin_node: AdminNode) -> None:
    config = _log(
        admin_node, topic="access", auto_create_topic=True, queue={"max_coalescing_delay": 0.01}
    )
    logged = admin_node.plugin_route("kafka-log", config)
    assert admin_node.request("GET", f"{logged}/hello")[0] == 200
    read = _consume_route(admin_node, "access")
    (record,) = _records(admin_node, read, 1)
    assert record["value"]["request"]["uri"] == f"{logged}/hello"
    assert record["value"]["response"]["status"] == 200
