"""proxy-cache through a running meshgate: the second request is served from the cache
without reaching the upstream."""

from __future__ import annotations

from pathlib import Path

from traffic_http_kit import gateways, kong_file, request

from testkit import EchoUpstreams


def test_proxy_cache_over_http(tmp_path: Path, echo_upstreams: EchoUpstreams) -> None:
    plugin = {"name": "proxy-cache", "config": {"strategy": "memory", "cache_ttl": 60}}
    config = kong_file(tmp_path, echo_upstreams.ports[0],
                       [{"name": "cached", "paths": ["/cached"], "plugins": [plugin]}])  # fmt: skip
    counters = echo_upstreams.counters[0]
    with gateways(config) as (gw,):
        status, miss_headers, miss_body = request(gw.port, "GET", "/cached/a?x=1")
        assert status == 200
        assert miss_headers["x-cache-status"] == "Miss"
        served = counters.get("requests", 0)
        status, hit_headers, hit_body = request(gw.port, "GET", "/cached/a?x=1")
        assert status == 200
        assert hit_headers["x-cache-status"] == "Hit"
        assert hit_body == miss_body
        assert hit_headers["x-cache-key"] == miss_headers["x-cache-key"]
        assert hit_headers["x-upstream"] == "echo-1"
        assert int(hit_headers["age"]) >= 0
        assert counters.get("requests", 0) == served  # the upstream was not asked again
        status, headers, _ = request(gw.port, "POST", "/cached/a?x=1", body=b"{}")
        assert headers["x-cache-status"] == "Bypass"
        assert request(gw.port, "GET", "/cached/a?x=2")[1]["x-cache-status"] == "Miss"
