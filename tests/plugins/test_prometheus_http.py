"""prometheus through a running gateway: proxied requests and plugin exits are counted with
Kong's labels and show up in ``render_metrics()`` (what ``/metrics`` serves)."""

from __future__ import annotations

from logsink_kit import wait_until
from prometheus_client.parser import text_string_to_metric_families

from meshgate.plugins.prometheus.exposition import render_metrics
from meshgate.proxy.filters.testing_http import live_gateway, plugin

ALL = {"status_code_metrics": True, "latency_metrics": True, "bandwidth_metrics": True}


def value(name: str, **labels: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(render_metrics()[0].decode()):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def test_proxied_requests_and_exits_are_counted() -> None:
    plugins = [
        plugin("prometheus", ALL),  # global
        plugin("request-termination", {"status_code": 403}, route="r3"),
    ]
    before_ok = value("kong_http_requests_total", route="r1", code="200", source="service")
    before_exit = value("kong_http_requests_total", route="r3", code="403", source="kong")
    before_upstream = value("kong_upstream_latency_ms_count", route="r1", service="s1")
    with live_gateway(plugins=plugins) as gw:
        for _ in range(3):
            assert gw.request("GET", "/r1/x").status == 200
        assert gw.request("GET", "/r3/x").status == 403
        wait_until(lambda: value("kong_http_requests_total", route="r3", code="403") > before_exit)
        wait_until(
            lambda: (
                value("kong_http_requests_total", route="r1", code="200", source="service")
                == before_ok + 3
            )
        )
    assert value("kong_upstream_latency_ms_count", route="r1", service="s1") == before_upstream + 3
    assert value("kong_bandwidth_bytes_total", route="r1", direction="egress") > 0
