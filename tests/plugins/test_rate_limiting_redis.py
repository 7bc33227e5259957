"""rate-limiting with the ``redis`` policy against the real redis-server of scripts/services:
exact counts (one loop, several processes, two gateway nodes), Kong's keys, and Redis being
down or hanging (fail-open when fault_tolerant, 500 otherwise)."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
from rate_limiting_procs import redis_hammer
from traffic_http_kit import burst, gateways, kong_file

from meshgate.proxy.filters.testing import (
    FakeContext,
    PhaseResult,
    arun_phases,
    make_handler,
)
from testkit import EchoUpstreams, free_port

pytestmark = pytest.mark.services

REDIS_URL = os.environ.get("MESHGATE_TEST_REDIS_URL")


@pytest.fixture
def redis_addr() -> tuple[str, int]:
    if not REDIS_URL:
        pytest.skip("MESHGATE_TEST_REDIS_URL is not set (run scripts/services/up.sh)")
    parts = urlsplit(REDIS_URL)
    return parts.hostname or "127.0.0.1", parts.port or 6379


@pytest.fixture
def redis_client(redis_addr: tuple[str, int]) -> Iterator[redis.Redis]:
    client = redis.Redis(host=redis_addr[0], port=redis_addr[1])
    yield client
    client.close()


def _config(host: str, port: int, **extra: Any) -> dict[str, Any]:
    return {
        "policy": "redis",
        "limit_by": "header",
        "header_name": "x-tenant",
        "redis": {"host": host, "port": port, "timeout": 500},
        **extra,
    }


def _send_all(handler: Any, tenants: list[str]) -> list[PhaseResult]:
    """One request per tenant, in order, in one event loop (its Redis client closed after)."""

    async def run() -> list[PhaseResult]:
        try:
            results = []
            for tenant in tenants:
                ctx = FakeContext("GET", "/orders", headers={"x-tenant": tenant})
                results.append(await arun_phases(handler, ctx, upstream=(200, {}, b"ok")))
            return results
        finally:
            await handler.redis.aclose()

    return asyncio.run(run())


def _send(handler: Any, tenant: str) -> PhaseResult:
    return _send_all(handler, [tenant])[0]


def test_redis_counts_exactly_with_kongs_keys(
    redis_addr: tuple[str, int], redis_client: redis.Redis
) -> None:
    tenant = f"t-{uuid.uuid4()}"
    h = make_handler(
        "rate-limiting", _config(*redis_addr, minute=3, hour=10), instance={"route": "r-1"},
        node_resources={},
    )  # fmt: skip
    results = _send_all(h, [tenant] * 4)
    assert [r.status for r in results] == [200, 200, 200, 429]
    assert results[0].headers["x-ratelimit-remaining-minute"] == ["2"]
    assert results[2].headers["ratelimit-remaining"] == ["0"]
    assert results[3].headers["retry-after"] == results[3].headers["ratelimit-reset"]
    assert results[3].headers["x-ratelimit-remaining-hour"] == ["7"]  # refusal not counted
    keys = sorted(k.decode() for k in redis_client.keys(f"ratelimit:r-1:*:{tenant}:*"))
    assert len(keys) == 2
    minute_key = next(k for k in keys if k.endswith(":minute"))
    empty_uuid = "00000000-0000-0000-0000-000000000000"
    assert minute_key.startswith(f"ratelimit:r-1:{empty_uuid}:{tenant}:")
    window_ms = int(minute_key.split(":")[-2])
    assert window_ms % 60000 == 0
    assert redis_client.get(minute_key) == b"3"
    assert 0 < redis_client.ttl(minute_key) <= 60
    redis_client.delete(*keys)


def test_redis_is_exact_under_concurrency_in_one_loop(redis_addr: tuple[str, int]) -> None:
    tenant = f"t-{uuid.uuid4()}"
    h = make_handler("rate-limiting", _config(*redis_addr, minute=15), node_resources={})

    async def run() -> list[int]:
        async def one() -> int:
            ctx = FakeContext("GET", "/orders", headers={"x-tenant": tenant})
            return (await arun_phases(h, ctx)).status

        try:
            return list(await asyncio.gather(*(one() for _ in range(40))))
        finally:
            await h.redis.aclose()  # type: ignore[attr-defined]

    statuses = asyncio.run(run())
    assert statuses.count(200) == 15
    assert statuses.count(429) == 25


@pytest.mark.slow
def test_redis_is_exact_across_processes(redis_addr: tuple[str, int]) -> None:
    spawn = multiprocessing.get_context("spawn")
    key = f"ratelimit:test:{uuid.uuid4()}:minute"
    start, out = spawn.Event(), spawn.Queue()
    procs = [
        spawn.Process(target=redis_hammer, args=(*redis_addr, key, 100, 60, start, out))
        for _ in range(3)
    ]
    for p in procs:
        p.start()
    assert [out.get(timeout=50) for _ in procs] == ["ready"] * 3
    start.set()
    allowed = [out.get(timeout=50) for _ in procs]
    for p in procs:
        p.join(10)
    assert sum(allowed) == 100


def test_redis_down_fails_open_when_fault_tolerant(caplog: pytest.LogCaptureFixture) -> None:
    closed = free_port()
    h = make_handler("rate-limiting", _config("127.0.0.1", closed, minute=1), node_resources={})
    for result in _send_all(h, ["t"] * 3):
        assert result.status == 200
        assert "x-ratelimit-limit-minute" not in result.headers
    assert "failed to get usage" in caplog.text


def test_redis_down_is_a_500_when_not_fault_tolerant() -> None:
    closed = free_port()
    h = make_handler(
        "rate-limiting",
        _config("127.0.0.1", closed, minute=1, fault_tolerant=False),
        node_resources={},
    )
    result = _send(h, "t")
    assert result.status == 500
    assert json.loads(result.body) == {"message": "An unexpected error occurred"}


def test_redis_that_never_answers_times_out() -> None:
    with socket.socket() as silent:  # accepts connections, never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        h = make_handler(
            "rate-limiting",
            {**_config("127.0.0.1", port, minute=1), "redis": {"host": "127.0.0.1",
                                                              "port": port, "timeout": 200}},
            node_resources={},
        )  # fmt: skip
        started = time.monotonic()
        assert _send(h, "t").status == 200
        assert time.monotonic() - started < 2


def test_redis_auth_failure_counts_as_down(redis_addr: tuple[str, int]) -> None:
    config = _config(*redis_addr, minute=1, fault_tolerant=False)
    config["redis"] = {**config["redis"], "username": "nobody", "password": "wrong"}
    h = make_handler("rate-limiting", config, node_resources={})
    assert _send(h, "t").status == 500


@pytest.mark.slow
def test_two_nodes_share_one_limit_through_redis(
    tmp_path: Path, echo_upstreams: EchoUpstreams, redis_addr: tuple[str, int]
) -> None:
    host, port = redis_addr
    tenant = f"t-{uuid.uuid4()}"
    routes = [
        {
            "name": "limited",
            "paths": ["/limited"],
            "plugins": [
                {
                    "name": "rate-limiting",
                    "config": {
                        "minute": 12,
                        "policy": "redis",
                        "limit_by": "header",
                        "header_name": "x-tenant",
                        "redis_host": host,  # Kong's deprecated flat form still works
                        "redis_port": port,
                    },
                }
            ],
        }
    ]
    config = kong_file(tmp_path, echo_upstreams.ports[0], routes)
    with gateways(config, count=2) as nodes:
        replies = burst([gw.port for gw in nodes], 36, "/limited/x", {"x-tenant": tenant})
    statuses = sorted(status for status, _, _ in replies)
    assert statuses == [200] * 12 + [429] * 24
