"""Traffic and security plugins configured through the Admin API of a store-backed node,
proven with real HTTP through the proxy: ip-restriction, cors, bot-detection,
request-size-limiting, rate-limiting, response-ratelimiting, request-termination,
proxy-cache, request-transformer, response-transformer, correlation-id and oas-validation."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest
from plugins_admin_kit import AdminNode


def test_ip_restriction_denies_loopback(admin_node: AdminNode) -> None:
    denied = admin_node.plugin_route("ip-restriction", {"deny": ["127.0.0.1"]})
    status, _, body = admin_node.json("GET", denied)
    assert (status, body) == (403, {"message": "IP address not allowed: 127.0.0.1"})
    allowed = admin_node.plugin_route("ip-restriction", {"allow": ["127.0.0.0/8"]},
                                      route="ip-allowed")  # fmt: skip
    assert admin_node.request("GET", allowed)[0] == 200


def test_cors_preflight_and_actual_request(admin_node: AdminNode) -> None:
    config = {"origins": [r"https://.*\.example\.com"], "credentials": True, "max_age": 600,
              "exposed_headers": ["X-Upstream"]}  # fmt: skip
    path = admin_node.plugin_route("cors", config)
    origin = "https://shop.example.com"
    preflight = {"Origin": origin, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "X-Token"}  # fmt: skip
    status, headers, body = admin_node.request("OPTIONS", path, preflight)
    assert (status, body) == (200, b"")
    assert "x-upstream" not in headers  # answered by the gateway
    assert headers["access-control-allow-origin"] == origin
    assert headers["access-control-allow-headers"] == "X-Token"
    assert headers["access-control-max-age"] == "600"
    status, headers, _ = admin_node.request("GET", path, {"Origin": origin})
    assert status == 200
    assert headers["access-control-expose-headers"] == "X-Upstream"
    _, headers, _ = admin_node.request("GET", path, {"Origin": "https://evil.net"})
    assert "access-control-allow-origin" not in headers


def test_bot_detection(admin_node: AdminNode) -> None:
    path = admin_node.plugin_route("bot-detection", {"deny": ["BadClient/"]})
    assert admin_node.request("GET", path, {"User-Agent": "Mozilla/5.0 Firefox/128"})[0] == 200
    for agent in ("sqlmap/1.8", "BadClient/2.0"):
        status, _, body = admin_node.json("GET", path, {"User-Agent": agent})
        assert (status, body) == (403, {"message": "Forbidden"})


def test_request_size_limiting(admin_node: AdminNode) -> None:
    config = {"allowed_payload_size": 1, "size_unit": "kilobytes"}
    path = admin_node.plugin_route("request-size-limiting", config)
    status, _, body = admin_node.json("POST", path, body=b"x" * 1024)
    assert (status, body["body_bytes"]) == (200, 1024)
    status, _, body = admin_node.json("POST", path, body=b"x" * 1025)
    assert (status, body) == (413, {"message": "Request size limit exceeded"})


def test_rate_limiting_local(admin_node: AdminNode) -> None:
    path = admin_node.plugin_route("rate-limiting", {"minute": 3, "hour": 100, "policy": "local"})
    remaining = []
    for _ in range(3):
        status, headers, _ = admin_node.request("GET", path)
        assert status == 200
        assert headers["ratelimit-limit"] == "3"
        assert headers["x-ratelimit-limit-hour"] == "100"
        remaining.append(headers["x-ratelimit-remaining-minute"])
    assert remaining == ["2", "1", "0"]
    status, headers, body = admin_node.json("GET", path)
    assert (status, body) == (429, {"message": "API rate limit exceeded"})
    assert headers["ratelimit-remaining"] == "0"
    assert 1 <= int(headers["retry-after"]) <= 60


class _Spending(http.server.BaseHTTPRequestHandler):
    """Reports the units a request used in X-Kong-Limit (the request's ``x-spend``)."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = (self.headers.get("x-ratelimit-remaining-videos") or "-").encode()
        self.send_response(200)
        spend = self.headers.get("x-spend")
        if spend:
            self.send_header("X-Kong-Limit", spend)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def spending_upstream() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Spending)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_response_ratelimiting_counts_upstream_units(
    admin_node: AdminNode, spending_upstream: int
) -> None:
    admin_node.create("/services", {"name": "spending",
                                    "url": f"http://127.0.0.1:{spending_upstream}"})  # fmt: skip
    path = admin_node.plugin_route("response-ratelimiting", {"limits": {"videos": {"minute": 3}}},
                                   service="spending")  # fmt: skip
    status, headers, body = admin_node.request("GET", path, {"x-spend": "videos=2"})
    assert (status, body) == (200, b"3")  # the upstream was told what was left
    assert headers["x-ratelimit-limit-videos-minute"] == "3"
    assert headers["x-ratelimit-remaining-videos-minute"] == "1"
    assert "x-kong-limit" not in headers
    status, headers, body = admin_node.request("GET", path, {"x-spend": "videos=1"})
    assert (status, body) == (200, b"1")
    assert admin_node.request("GET", path, {"x-spend": "videos=1"})[0] == 429


def test_request_termination(admin_node: AdminNode) -> None:
    path = admin_node.plugin_route("request-termination",
                                   {"status_code": 418, "message": "not here"})  # fmt: skip
    before = admin_node.echo_counters.get("requests", 0)
    status, _, body = admin_node.json("GET", path)
    assert (status, body) == (418, {"message": "not here"})
    assert admin_node.echo_counters.get("requests", 0) == before


def test_proxy_cache_miss_then_hit(admin_node: AdminNode) -> None:
    path = admin_node.plugin_route("proxy-cache", {"strategy": "memory", "cache_ttl": 60})
    status, miss_headers, miss_body = admin_node.request("GET", f"{path}/a?x=1")
    assert (status, miss_headers["x-cache-status"]) == (200, "Miss")
    served = admin_node.echo_counters.get("requests", 0)
    status, hit_headers, hit_body = admin_node.request("GET", f"{path}/a?x=1")
    assert (status, hit_headers["x-cache-status"]) == (200, "Hit")
    assert hit_body == miss_body
    assert admin_node.echo_counters.get("requests", 0) == served  # not asked again


def test_request_transformer(admin_node: AdminNode) -> None:
    config = {"add": {"headers": ["x-added:yes"], "querystring": ["v:2"]},
              "remove": {"headers": ["x-secret"]}}  # fmt: skip
    path = admin_node.plugin_route("request-transformer", config)
    status, _, seen = admin_node.json("GET", f"{path}/x?keep=1", {"x-secret": "s"})
    assert status == 200
    assert seen["headers"]["x-added"] == "yes"
    assert "x-secret" not in seen["headers"]
    assert seen["url"] == "/x?keep=1&v=2"  # strip_path defaults to true


def test_response_transformer(admin_node: AdminNode) -> None:
    config = {"add": {"headers": ["x-resp-added:1"], "json": ["n:5"], "json_types": ["number"]},
              "remove": {"headers": ["x-upstream"]}}  # fmt: skip
    path = admin_node.plugin_route("response-transformer", config)
    status, headers, body = admin_node.json("GET", path)
    assert status == 200
    assert headers["x-resp-added"] == "1"
    assert "x-upstream" not in headers
    assert body["n"] == 5
    assert body["upstream"] == "echo-admin"


def test_correlation_id(admin_node: AdminNode) -> None:
    config = {"header_name": "X-Corr-ID", "generator": "uuid", "echo_downstream": True}
    path = admin_node.plugin_route("correlation-id", config)
    status, headers, body = admin_node.json("GET", path)
    assert status == 200
    generated = body["headers"]["x-corr-id"]
    assert len(generated) == 36
    assert headers["x-corr-id"] == generated
    seen = admin_node.upstream_headers(path, {"X-Corr-ID": "given-id"})
    assert seen["x-corr-id"] == "given-id"


SPEC = """
openapi: 3.0.3
info: {title: admin, version: "1"}
paths:
  /p-oas-validation/items/{id}:
    parameters: [{name: id, in: path, required: true, schema: {type: integer}}]
    get: {}
"""


def test_oas_validation(admin_node: AdminNode) -> None:
    config = {"api_spec": SPEC, "api_spec_encoded": False, "verbose_response": True}
    path = admin_node.plugin_route("oas-validation", config)
    assert admin_node.request("GET", f"{path}/items/5")[0] == 200
    status, _, body = admin_node.json("GET", f"{path}/items/abc")
    assert status == 400
    assert "path 'id' validation failed" in body["message"]
