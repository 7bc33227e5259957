"""Cluster-wide Idempotency-Key (``idempotency_scope: cluster``): answers kept in a topic of
the event log, so a retry sent to another node is replayed and not produced again.

Store level on the embedded log (two stores = two nodes sharing one log) and on the real
broker (two independent Kafka clients); end to end with two gateways on the real broker."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
from events_http_kit import close_gateway_logs, kafka_bootstrap

from meshgate.events import open_event_log
from meshgate.events.api import EventLog
from meshgate.events.http_api.idempotency import IdempotencyStore, StoredAnswer
from meshgate.events.http_api.idempotency_shared import SharedIdempotencyStore
from meshgate.events.http_api.problems import HttpProblem
from meshgate.proxy.filters.testing_http import live_gateway, plugin, route


class Work:
    """A produce stand-in that counts its calls."""

    def __init__(self, body: bytes) -> None:
        self.calls = 0
        self.body = body

    async def __call__(self) -> StoredAnswer:
        self.calls += 1
        return StoredAnswer(200, (("Content-Type", "application/json"),), self.body)


async def _two_nodes(node_a: EventLog, node_b: EventLog, topic: str) -> None:
    store_a = SharedIdempotencyStore(node_a, topic, "plugin-1", 3600, timeout=20)
    store_b = SharedIdempotencyStore(node_b, topic, "plugin-1", 3600, timeout=20)
    other_scope = SharedIdempotencyStore(node_b, topic, "plugin-2", 3600, timeout=20)
    try:
        first, second, third = Work(b'{"n":1}'), Work(b'{"n":2}'), Work(b'{"n":3}')
        answer, replayed = await store_a.run("key-1", "fp", first)
        assert (answer.body, replayed, first.calls) == (b'{"n":1}', False, 1)
        answer, replayed = await store_b.run("key-1", "fp", second)
        assert (answer.body, replayed, second.calls) == (b'{"n":1}', True, 0)
        with pytest.raises(HttpProblem) as reused:
            await store_b.run("key-1", "another request", second)
        assert reused.value.status == 422
        answer, replayed = await other_scope.run("key-1", "fp", third)
        assert (replayed, third.calls) == (False, 1)
        failing = Work(b"")

        async def fails() -> StoredAnswer:
            await failing()
            return StoredAnswer(503, (), b"down")

        assert (await store_a.run("key-2", "fp", fails))[0].status == 503
        answer, replayed = await store_b.run("key-2", "fp", second)  # failures are not kept
        assert (replayed, second.calls) == (False, 1)
    finally:
        for store in (store_a, store_b, other_scope):
            await store.close()
    restarted = SharedIdempotencyStore(node_a, topic, "plugin-1", 3600, timeout=20)
    try:
        answer, replayed = await restarted.run("key-2", "fp", Work(b"never"))
        assert (answer.body, replayed) == (b'{"n":2}', True)
    finally:
        await restarted.close()


def test_answers_shared_through_the_embedded_log(tmp_path: Path) -> None:
    async def scenario() -> None:
        log = await open_event_log(str(tmp_path / "log"), auto_create_topics=True)
        try:
            await _two_nodes(log, log, "idem")
        finally:
            await log.close()

    asyncio.run(scenario())


@pytest.mark.services
def test_answers_shared_between_two_kafka_clients() -> None:
    bootstrap = kafka_bootstrap()

    async def scenario() -> None:
        node_a = await open_event_log(f"kafka://{bootstrap}")
        node_b = await open_event_log(f"kafka://{bootstrap}")
        try:
            await _two_nodes(node_a, node_b, f"idem-{uuid.uuid4().hex[:10]}")
        finally:
            await node_a.close()
            await node_b.close()

    asyncio.run(scenario())


def _records_in(bootstrap: str, topic: str) -> int:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex})
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=20)
        return int(high - low)
    finally:
        consumer.close()


def _gateway_config(bootstrap: str, topic: str, scope: str, node_dir: Path) -> dict[str, Any]:
    host, _, port = bootstrap.rpartition(":")
    # idempotency_path differs per node: a replay cannot come from a shared file
    return {"backend": "kafka", "bootstrap_servers": [{"host": host, "port": int(port)}],
            "auto_create_topic": True, "topic": topic, "message_format": "raw",
            "idempotency_scope": scope, "idempotency_topic": f"{topic}-idem",
            "idempotency_path": str(node_dir)}  # fmt: skip


def _close_nodes(*nodes: Any) -> None:
    for node in nodes:
        for value in node.runtime._node_resources.values():
            if isinstance(value, SharedIdempotencyStore):
                node.run(value.close())
            elif isinstance(value, IdempotencyStore):
                value.close()
        close_gateway_logs(node)


@pytest.mark.services
@pytest.mark.parametrize("scope", ["cluster", "node"])
def test_retry_through_another_gateway(tmp_path: Path, scope: str) -> None:
    """cluster: replayed by the other node, one record. node: the other node produces again
    (the documented per-node limit, here as the control that the cluster case means it)."""
    bootstrap = kafka_bootstrap()
    topic = f"orders-{uuid.uuid4().hex[:10]}"
    routes = [route("produce", "/produce", service=None)]
    # the same plugin instance id on both, as the control plane hands it to every node
    plugins_1 = [plugin("kafka-upstream", _gateway_config(bootstrap, topic, scope, tmp_path / "1"),
                        route="produce", id="produce-plugin")]  # fmt: skip
    plugins_2 = [plugin("kafka-upstream", _gateway_config(bootstrap, topic, scope, tmp_path / "2"),
                        route="produce", id="produce-plugin")]  # fmt: skip
    headers = {"Idempotency-Key": "order-42", "Content-Type": "application/json"}
    with (
        live_gateway(plugins=plugins_1, routes=routes) as node_1,
        live_gateway(plugins=plugins_2, routes=routes) as node_2,
    ):
        first = node_1.request("POST", "/produce", headers=headers, body=b'{"order":42}')
        assert first.status == 200, first.body
        retry = node_2.request("POST", "/produce", headers=headers, body=b'{"order":42}')
        assert retry.status == 200, retry.body
        other = node_2.request("POST", "/produce", headers={**headers, "Idempotency-Key": "o-43"},
                               body=b'{"order":43}')  # fmt: skip
        assert other.status == 200
        assert other.header("Idempotent-Replayed") is None
        _close_nodes(node_1, node_2)
    if scope == "cluster":
        assert retry.header("Idempotent-Replayed") == "true"
        assert retry.json()["offset"] == first.json()["offset"]
        assert _records_in(bootstrap, topic) == 2
    else:
        assert retry.header("Idempotent-Replayed") is None
        assert _records_in(bootstrap, topic) == 3
