"""http-log through a running gateway: each proxied request's record reaches the receiver;
with the receiver down, requests still succeed."""

from __future__ import annotations

import json

from logsink_kit import HttpSink, closed_port, wait_until

from meshgate.proxy.filters.testing_http import live_gateway, plugin


def test_records_reach_the_receiver() -> None:
    sink = HttpSink()
    try:
        config = {"http_endpoint": sink.url, "queue": {"max_coalescing_delay": 0.01}}
        with live_gateway(plugins=[plugin("http-log", config, route="r1")]) as gw:
            for i in range(3):
                assert gw.request("GET", f"/r1/item/{i}").status == 200
            assert gw.request("GET", "/r2/other").status == 200  # no plugin there
            wait_until(lambda: len(sink.requests) == 3)
        records = [json.loads(body) for *_, body in sink.requests]
        assert sorted(r["request"]["uri"] for r in records) == [f"/r1/item/{i}" for i in range(3)]
        assert all(r["route"]["name"] == "r1" and r["response"]["status"] == 200 for r in records)
        assert all(r["service"]["name"] == "s1" for r in records)
    finally:
        sink.close()


def test_receiver_down_does_not_hurt_requests() -> None:
    config = {"http_endpoint": f"http://127.0.0.1:{closed_port()}/", "queue": {"max_entries": 2}}
    with live_gateway(plugins=[plugin("http-log", config, route="r1")]) as gw:
        statuses = [gw.request("GET", f"/r1/{i}").status for i in range(20)]
    assert statuses == [200] * 20
