"""response-ratelimiting through a live gateway over real HTTP, in front of an upstream that
reports the units each request used in ``X-Kong-Limit`` (it echoes the request's
``x-spend``)."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest

from meshgate.proxy.filters.testing_http import live_gateway, plugin


class _Spending(http.server.BaseHTTPRequestHandler):
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
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_units_reported_by_the_upstream_are_counted_and_enforced(
    spending_upstream: int,
) -> None:
    limits = {"limits": {"videos": {"minute": 3}}}
    with live_gateway() as gw:
        gw.upstream_port = spending_upstream
        gw.apply([plugin("response-ratelimiting", limits, route="r1")])
        first = gw.request("GET", "/r1/a", headers={"x-spend": "videos=2"})
        assert first.status == 200
        assert first.body == b"3"  # the upstream was told what was left
        assert first.header("X-RateLimit-Limit-videos-minute") == "3"
        assert first.header("X-RateLimit-Remaining-videos-minute") == "1"
        assert first.header("X-Kong-Limit") is None
        second = gw.request("GET", "/r1/a", headers={"x-spend": "videos=1"})
        assert (second.status, second.body) == (200, b"1")
        assert second.header("X-RateLimit-Remaining-videos-minute") == "0"
        refused = gw.request("GET", "/r1/a", headers={"x-spend": "videos=1"})
        assert refused.status == 429
        assert refused.body == b""
        free = gw.request("GET", "/r1/a")  # spends nothing: still served
        assert (free.status, free.body) == (200, b"0")
        other = gw.request("GET", "/r2/a", headers={"x-spend": "videos=1"})
        assert other.status == 200  # no plugin on r2: the header goes to the client as is
        assert other.header("X-Kong-Limit") == "videos=1"
