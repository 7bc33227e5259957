"""response-ratelimiting with the ``redis`` policy against the real redis-server of
scripts/services: usage read and units added under Kong's keys, and Redis being down
(fail-open when fault_tolerant, 500 otherwise)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis

from meshgate.proxy.filters.testing import FakeContext, PhaseResult, arun_phases, make_handler
from testkit import free_port

pytestmark = pytest.mark.services

REDIS_URL = os.environ.get("MESHGATE_TEST_REDIS_URL")
EMPTY_UUID = "00000000-0000-0000-0000-000000000000"


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


def _handler(host: str, port: int, **extra: Any) -> Any:
    config = {
        "policy": "redis",
        "limit_by": "ip",
        "limits": {"videos": {"minute": 3, "hour": 100}},
        "redis": {"host": host, "port": port, "timeout": 500},
        **extra,
    }
    return make_handler(
        "response-ratelimiting", config, instance={"route": "r-1"}, node_resources={}
    )


def _send_all(handler: Any, ip: str, spends: list[str | None]) -> list[PhaseResult]:
    async def run() -> list[PhaseResult]:
        try:
            results = []
            for spend in spends:
                headers = {"X-Kong-Limit": spend} if spend else {}
                ctx = FakeContext("GET", "/videos", client_ip=ip)
                results.append(await arun_phases(handler, ctx, upstream=(200, headers, b"ok")))
                for _ in range(200):  # the log phase counts in a task: let it land
                    if not [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]:
                        break
                    await asyncio.sleep(0.005)
            return results
        finally:
            await handler.redis.aclose()

    return asyncio.run(run())


def test_redis_counts_units_under_kongs_keys(
    redis_addr: tuple[str, int], redis_client: redis.Redis
) -> None:
    ip = f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.7"
    h = _handler(*redis_addr)
    results = _send_all(h, ip, ["videos=2", "videos=1", "videos=1", None])
    assert [r.status for r in results] == [200, 200, 429, 200]
    assert results[0].headers["x-ratelimit-remaining-videos-minute"] == ["1"]
    assert results[1].headers["x-ratelimit-remaining-videos-minute"] == ["0"]
    assert results[3].headers["x-ratelimit-remaining-videos-hour"] == ["97"]  # 429 not counted
    keys = sorted(k.decode() for k in redis_client.keys(f"response-ratelimit:r-1:*:{ip}:*"))
    assert len(keys) == 2
    minute_key = next(k for k in keys if k.endswith(":videos:minute"))
    assert minute_key.startswith(f"response-ratelimit:r-1:{EMPTY_UUID}:{ip}:")
    assert int(minute_key.split(":")[-3]) % 60000 == 0
    assert redis_client.get(minute_key) == b"3"
    assert 0 < redis_client.ttl(minute_key) <= 60
    redis_client.delete(*keys)


def test_redis_down_fails_open_or_answers_500(redis_addr: tuple[str, int]) -> None:
    dead_port = free_port()
    tolerant = _send_all(_handler("127.0.0.1", dead_port), "10.0.0.1", ["videos=1"])[0]
    assert tolerant.status == 200
    assert "x-ratelimit-remaining-videos-minute" not in tolerant.headers
    strict_handler = _handler("127.0.0.1", dead_port, fault_tolerant=False)
    strict = _send_all(strict_handler, "10.0.0.1", ["videos=1"])[0]
    assert strict.status == 500
    assert strict.exit is not None
    assert strict.exit.body == b'{"message":"An unexpected error occurred"}'
