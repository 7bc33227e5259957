"""request-size-limiting through a running meshgate: declared and chunked bodies over the limit
get 413, smaller ones reach the upstream."""

from __future__ import annotations

import json
from pathlib import Path

from traffic_http_kit import gateways, kong_file, request

from testkit import EchoUpstreams


def test_request_size_limiting_over_http(tmp_path: Path, echo_upstreams: EchoUpstreams) -> None:
    plugin = {"name": "request-size-limiting",
              "config": {"allowed_payload_size": 1, "size_unit": "kilobytes"}}  # fmt: skip
    config = kong_file(tmp_path, echo_upstreams.ports[0],
                       [{"name": "up", "paths": ["/up"], "plugins": [plugin]}])  # fmt: skip
    with gateways(config) as (gw,):
        status, _, body = request(gw.port, "POST", "/up", body=b"x" * 1024)
        assert status == 200
        assert json.loads(body)["body_bytes"] == 1024
        status, headers, body = request(gw.port, "POST", "/up", body=b"x" * 1025)
        assert status == 413
        assert headers["connection"] == "close"  # not read: a client sending too much
        assert json.loads(body) == {"message": "Request size limit exceeded"}
        status, _, body = request(gw.port, "POST", "/up", body=[b"a" * 500, b"b" * 500])
        assert status == 200
        assert json.loads(body)["body_bytes"] == 1000
        status, _, body = request(gw.port, "POST", "/up", body=[b"a" * 700, b"b" * 700])
        assert status == 413
        assert json.loads(body)["message"] == "Request size limit exceeded"
