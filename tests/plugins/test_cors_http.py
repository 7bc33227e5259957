"""cors through a running meshgate: a preflight answered by the gateway, an actual request
with the CORS headers added to the upstream's answer."""

from __future__ import annotations

from pathlib import Path

from traffic_http_kit import gateways, kong_file, request

from testkit import EchoUpstreams


def test_cors_over_http(tmp_path: Path, echo_upstreams: EchoUpstreams) -> None:
    plugin = {"name": "cors", "config": {"origins": [r"https://.*\.example\.com"],
              "credentials": True, "max_age": 600, "exposed_headers": ["X-Upstream"]}}  # fmt: skip
    config = kong_file(tmp_path, echo_upstreams.ports[0],
                       [{"name": "api", "paths": ["/api"], "plugins": [plugin]}])  # fmt: skip
    origin = "https://shop.example.com"
    with gateways(config) as (gw,):
        status, headers, body = request(
            gw.port, "OPTIONS", "/api/items",
            {"Origin": origin, "Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "X-Token"},
        )  # fmt: skip
        assert status == 200
        assert body == b""
        assert "x-upstream" not in headers  # answered by the gateway
        assert headers["access-control-allow-origin"] == origin
        assert headers["access-control-allow-credentials"] == "true"
        assert headers["access-control-allow-headers"] == "X-Token"
        assert headers["access-control-max-age"] == "600"
        assert headers["vary"] == "Origin"
        status, headers, _ = request(gw.port, "GET", "/api/items", {"Origin": origin})
        assert status == 200
        assert headers["x-upstream"] == "echo-1"
        assert headers["access-control-allow-origin"] == origin
        assert headers["access-control-expose-headers"] == "X-Upstream"
        status, headers, _ = request(gw.port, "GET", "/api/items", {"Origin": "https://evil.net"})
        assert status == 200
        assert "access-control-allow-origin" not in headers
