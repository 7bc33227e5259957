"""ip-restriction through a running meshgate (the test client is 127.0.0.1)."""

from __future__ import annotations

import json
from pathlib import Path

from traffic_http_kit import gateways, kong_file, request

from testkit import EchoUpstreams


def test_ip_restriction_over_http(tmp_path: Path, echo_upstreams: EchoUpstreams) -> None:
    routes = [
        {"name": "denied", "paths": ["/denied"],
         "plugins": [{"name": "ip-restriction", "config": {"deny": ["127.0.0.0/8"]}}]},
        {"name": "allowed", "paths": ["/allowed"],
         "plugins": [{"name": "ip-restriction", "config": {"allow": ["127.0.0.1", "::1"]}}]},
        {"name": "custom", "paths": ["/custom"],
         "plugins": [{"name": "ip-restriction",
                      "config": {"allow": ["10.0.0.0/8"], "status": 401, "message": "nope"}}]},
    ]  # fmt: skip
    config = kong_file(tmp_path, echo_upstreams.ports[0], routes)
    with gateways(config) as (gw,):
        status, _, body = request(gw.port, "GET", "/denied")
        assert status == 403
        assert json.loads(body) == {"message": "IP address not allowed: 127.0.0.1"}
        status, _, _ = request(gw.port, "GET", "/allowed")
        assert status == 200
        status, _, body = request(gw.port, "GET", "/custom")
        assert status == 401
        assert json.loads(body) == {"message": "nope"}
