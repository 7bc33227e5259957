"""bot-detection through a running meshgate."""

from __future__ import annotations

import json
from pathlib import Path

from traffic_http_kit import gateways, kong_file, request

from testkit import EchoUpstreams


def test_bot_detection_over_http(tmp_path: Path, echo_upstreams: EchoUpstreams) -> None:
    plugin = {"name": "bot-detection", "config": {"deny": ["BadClient/"]}}
    config = kong_file(tmp_path, echo_upstreams.ports[0],
                       [{"name": "web", "paths": ["/web"], "plugins": [plugin]}])  # fmt: skip
    with gateways(config) as (gw,):
        assert request(gw.port, "GET", "/web", {"User-Agent": "Mozilla/5.0 Firefox/128"})[0] == 200
        for agent in ("sqlmap/1.8", "BadClient/2.0"):
            status, _, body = request(gw.port, "GET", "/web", {"User-Agent": agent})
            assert status == 403
            assert json.loads(body) == {"message": "Forbidden"}
