"""rate-limiting (local policy) through a running ``meshgate run`` with 2 worker processes: a burst
of concurrent requests against a limit lets exactly the limit through, with Kong's headers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from traffic_http_kit import burst, gateways, kong_file, request

from testkit import EchoUpstreams


@pytest.mark.slow
def test_local_policy_is_exact_across_two_workers(
    tmp_path: Path, echo_upstreams: EchoUpstreams
) -> None:
    routes = [
        {
            "name": "limited",
            "paths": ["/limited"],
            "plugins": [{"name": "rate-limiting", "config": {"minute": 10, "hour": 1000}}],
        },
        {"name": "free", "paths": ["/free"]},
    ]
    config = kong_file(tmp_path, echo_upstreams.ports[0], routes)
    with gateways(config, workers=2) as (gw,):
        replies = burst([gw.port], 30, "/limited/x")
        statuses = sorted(status for status, _, _ in replies)
        assert statuses == [200] * 10 + [429] * 20
        ok = [headers for status, headers, _ in replies if status == 200]
        remaining = sorted(int(h["x-ratelimit-remaining-minute"]) for h in ok)
        assert remaining == list(range(10))  # every allowed request saw its own count
        assert all(
            h["ratelimit-limit"] == "10" and h["x-ratelimit-limit-hour"] == "1000" for h in ok
        )
        status, headers, body = request(gw.port, "GET", "/limited/x")
        assert status == 429
        assert json.loads(body) == {"message": "API rate limit exceeded"}
        assert headers["ratelimit-remaining"] == "0"
        assert 1 <= int(headers["retry-after"]) <= 60
        assert headers["retry-after"] == headers["ratelimit-reset"]
        assert headers["x-ratelimit-remaining-hour"] == "990"  # refusals are not counted
        free_status, free_headers, _ = request(gw.port, "GET", "/free/x")
        assert free_status == 200
        assert "ratelimit-limit" not in free_headers
