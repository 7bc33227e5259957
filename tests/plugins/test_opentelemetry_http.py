"""opentelemetry through a running gateway: the upstream sees the continued W3C context
and the fake collector receives the request's spans (server + balancer) in that trace."""

from __future__ import annotations

import json

from logsink_kit import HttpSink, wait_until

from meshgate.proxy.filters.testing_http import live_gateway, plugin

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


def test_trace_is_continued_and_exported() -> None:
    collector = HttpSink()
    try:
        config = {"traces_endpoint": collector.url, "queue": {"max_coalescing_delay": 0.01}}
        with live_gateway(plugins=[plugin("opentelemetry", config, route="r1")]) as gw:
            res = gw.request("GET", "/r1/x", headers={"traceparent": f"00-{TRACE}-{PARENT}-01"})
            assert res.status == 200
            upstream = res.json()["headers"]["traceparent"].split("-")
            assert upstream[1] == TRACE
            assert upstream[3] == "01"
            wait_until(lambda: len(collector.requests) >= 1)
        spans = [
            span
            for *_, body in collector.requests
            for span in json.loads(body)["resourceSpans"][0]["scopeSpans"][0]["spans"]
        ]
        by_name = {span["name"]: span for span in spans}
        assert by_name["kong"]["traceId"] == TRACE
        assert by_name["kong"]["parentSpanId"] == PARENT
        balancer = by_name["kong.balancer"]
        assert balancer["parentSpanId"] == by_name["kong"]["spanId"]
        assert balancer["spanId"] == upstream[2]  # the upstream's parent is the balancer span
    finally:
        collector.close()
