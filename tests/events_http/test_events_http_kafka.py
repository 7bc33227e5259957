"""The HTTP event gateway on the real Kafka broker, checked with a client that is not ours
(kcat): records produced over HTTP read back by kcat with key, headers and value intact;
records kcat produces come out of GET and SSE intact; an unreachable broker gives 503.

Needs ``MESHGATE_TEST_KAFKA_BOOTSTRAP`` (``eval "$(bash scripts/services/env.sh)"``).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import uuid
from typing import Any

import pytest
from events_http_kit import SECRET, StreamClient, close_gateway_logs

from meshgate.proxy.filters.testing_http import live_gateway, plugin, route

pytestmark = pytest.mark.services
KAFKA_ENV = "MESHGATE_TEST_KAFKA_BOOTSTRAP"


@pytest.fixture
def bootstrap() -> str:
    value = os.environ.get(KAFKA_ENV)
    if not value:
        pytest.skip(f'{KAFKA_ENV} is not set; start Kafka: eval "$(bash scripts/services/env.sh)"')
    if shutil.which("kcat") is None:
        pytest.skip("kcat is not installed")
    return value


def _servers(bootstrap: str) -> list[dict[str, Any]]:
    out = []
    for item in bootstrap.split(","):
        host, _, port = item.rpartition(":")
        out.append({"host": host, "port": int(port)})
    return out


def _kcat_read(bootstrap: str, topic: str, count: int) -> list[dict[str, Any]]:
    done = subprocess.run(
        ["kcat", "-b", bootstrap, "-C", "-t", topic, "-J", "-o", "beginning", "-e",
         "-c", str(count), "-q"],
        capture_output=True, timeout=30, check=True,
    )  # fmt: skip
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def _kcat_write(bootstrap: str, topic: str, key: str, value: bytes, headers: list[str]) -> None:
    args = ["kcat", "-b", bootstrap, "-P", "-t", topic, "-k", key, "-p", "0"]
    for header in headers:
        args += ["-H", header]
    subprocess.run(args, input=value, timeout=30, check=True)


def _kafka_plugins(bootstrap: str, topic: str) -> tuple[list[Any], list[Any]]:
    common = {"backend": "kafka", "bootstrap_servers": _servers(bootstrap),
              "auto_create_topic": True}  # fmt: skip
    consume = {**common, "topics": [{"name": topic}], "cursor_secret": SECRET,
               "auto_offset_reset": "earliest", "long_poll_timeout": 3000}  # fmt: skip
    routes = [route("produce", "/produce", service=None), route("rest", "/kafka", service=None),
              route("get", "/get", service=None), route("sse", "/sse", service=None)]  # fmt: skip
    plugins = [
        plugin(
            "kafka-upstream",
            {
                **common,
                "topic": topic,
                "message_format": "raw",
                "producer_request_acks": -1,
                "producer_request_timeout": 10000,
                "key_header": "x-key",
                "record_headers": ["x-trace"],
            },
            route="produce",
        ),
        plugin("kafka-rest", common, route="rest"),
        plugin("kafka-consume", consume, route="get"),
        plugin("kafka-consume", {**consume, "mode": "server-sent-events"}, route="sse"),
    ]
    return routes, plugins


def test_http_produced_records_read_back_by_kcat(bootstrap: str) -> None:
    topic = f"http-kcat-{uuid.uuid4().hex[:8]}"
    routes, plugins = _kafka_plugins(bootstrap, topic)
    with live_gateway(plugins=plugins, routes=routes) as gw:
        res = gw.request("POST", "/produce", headers={"Content-Type": "application/json",
                                                      "X-Key": "order-7", "X-Trace": "t-1"},
                         body=b'{"id":7}')  # fmt: skip
        assert res.status == 200, res.body
        raw = base64.b64encode(b"bin\x01value").decode()
        v2 = gw.request("POST", f"/kafka/topics/{topic}/partitions/0",
                        headers={"Content-Type": "application/vnd.kafka.binary.v2+json"},
                        body=json.dumps({"records": [{"key": base64.b64encode(b"k2").decode(),
                                                      "value": raw}]}).encode())  # fmt: skip
        assert v2.status == 200
        assert v2.json()["offsets"][0]["error_code"] is None
        close_gateway_logs(gw)
    first, second = _kcat_read(bootstrap, topic, 2)
    assert first["key"] == "order-7"
    assert first["payload"] == '{"id":7}'
    assert first["headers"] == ["content-type", "application/json", "x-trace", "t-1"]
    assert first["offset"] == res.json()["offset"]
    assert second["key"] == "k2"
    assert second["payload"] == "bin\x01value"


def test_kcat_produced_records_come_out_of_get_and_sse(bootstrap: str) -> None:
    topic = f"kcat-http-{uuid.uuid4().hex[:8]}"
    routes, plugins = _kafka_plugins(bootstrap, topic)
    with live_gateway(plugins=plugins, routes=routes) as gw:
        # create the topic through the gateway, then write with kcat
        assert gw.request("POST", "/produce", body=b'"first"').status == 200
        _kcat_write(bootstrap, topic, "kc-key", b'{"from":"kcat"}', ["h1=v1", "h2=v2"])
        records: list[Any] = []
        for _ in range(10):
            records = gw.request("GET", "/get").json()["records"]
            if len(records) >= 2:
                break
        assert len(records) == 2
        record = records[1]
        assert record["key"] == "kc-key"
        assert record["value"] == {"from": "kcat"}
        assert record["headers"] == [
            {"name": "h1", "value": "djE="},
            {"name": "h2", "value": "djI="},
        ]
        stream = StreamClient(gw.port, "/sse")
        events = stream.sse_events(2)
        assert json.loads(events[1].data)["key"] == "kc-key"
        assert json.loads(events[1].data)["value"] == {"from": "kcat"}
        stream.close()
        close_gateway_logs(gw)


def test_unreachable_broker_is_503_and_nothing_acknowledged() -> None:
    with socket.socket() as probe:  # a port with nobody listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = {"backend": "kafka", "bootstrap_servers": [{"host": "127.0.0.1", "port": port}],
              "topic": "t", "message_format": "raw", "producer_request_timeout": 500,
              "timeout": 1000}  # fmt: skip
    routes = [route("produce", "/produce", service=None)]
    with live_gateway(plugins=[plugin("kafka-upstream", config, route="produce")],
                      routes=routes) as gw:  # fmt: skip
        res = gw.request("POST", "/produce", body=b"x")
        assert res.status == 503
        assert res.header("meshgate-error") == "event-log-unavailable"
        assert res.header("Retry-After") is not None
        close_gateway_logs(gw)


def test_group_mode_on_kafka_delivers_every_record_once(bootstrap: str) -> None:
    import asyncio

    from events_http_kit import body_json, build, call, close_logs

    from meshgate.events.api import ProduceRecord
    from meshgate.proxy.filters.testing import FakeContext

    topic = f"grp-{uuid.uuid4().hex[:8]}"

    async def scenario() -> None:
        res: dict[str, Any] = {}
        config = {"backend": "kafka", "bootstrap_servers": _servers(bootstrap),
                  "topics": [{"name": topic}], "auto_offset_reset": "earliest",
                  "long_poll_timeout": 3000}  # fmt: skip
        h = build("kafka-consume", config, res)
        log = h.event_log  # type: ignore[attr-defined]
        await log.create_topic(topic, 2)
        for i in range(6):
            await log.produce(topic, [ProduceRecord(value=b"%d" % i)], partition=i % 2)
        seen: list[tuple[int, int]] = []
        for _ in range(10):
            doc = body_json(await call(h, FakeContext("GET", f"/c?group_id=g-{topic}")))
            seen += [(r["partition"], r["offset"]) for r in doc["records"]]
            if len(seen) >= 6:
                break
        assert sorted(seen) == [(p, o) for p in (0, 1) for o in range(3)]
        await close_logs(res)

    asyncio.run(scenario())
