"""tcp-log through a running gateway: records of proxied requests reach the TCP receiver."""

from __future__ import annotations

import json

from logsink_kit import TcpSink, wait_until

from meshgate.proxy.filters.testing_http import live_gateway, plugin


def test_records_reach_the_tcp_receiver() -> None:
    sink = TcpSink()
    try:
        config = {"host": "127.0.0.1", "port": sink.port}
        with live_gateway(plugins=[plugin("tcp-log", config, route="r1")]) as gw:
            for i in range(3):
                assert gw.request("GET", f"/r1/{i}").status == 200
            wait_until(lambda: len(sink.lines()) == 3)
        records = [json.loads(line) for line in sink.lines()]
        assert sorted(r["request"]["uri"] for r in records) == ["/r1/0", "/r1/1", "/r1/2"]
    finally:
        sink.close()
