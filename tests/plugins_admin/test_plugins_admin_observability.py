"""Observability plugins configured through the Admin API of a store-backed node, proven with
real HTTP through the proxy and local receivers: prometheus (the Admin API's ``/metrics``),
opentelemetry (an OTLP/HTTP collector stub), http-log, tcp-log and file-log."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from plugins_admin_kit import AdminNode
from plugins_admin_sinks import HttpSink, TcpSink, wait_until
from prometheus_client.parser import text_string_to_metric_families

FAST_QUEUE = {"max_coalescing_delay": 0.01}


@pytest.fixture
def http_sink() -> Iterator[HttpSink]:
    sink = HttpSink()
    try:
        yield sink
    finally:
        sink.close()


def _route_requests(admin_node: AdminNode, route: str) -> float:
    status, text = admin_node.admin("GET", "/metrics")
    assert status == 200
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "kong_http_requests_total" and sample.labels.get("route") == route
    )


def test_prometheus_counts_the_route_in_admin_metrics(admin_node: AdminNode) -> None:
    path = admin_node.plugin_route("prometheus", {"status_code_metrics": True})
    for _ in range(4):
        assert admin_node.request("GET", path)[0] == 200
    wait_until(lambda: _route_requests(admin_node, "prometheus") >= 4)
    assert _route_requests(admin_node, "prometheus") == 4


TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def test_opentelemetry_exports_spans_to_the_collector(
    admin_node: AdminNode, http_sink: HttpSink
) -> None:
    config = {"traces_endpoint": http_sink.url("/v1/traces"), "queue": FAST_QUEUE}
    path = admin_node.plugin_route("opentelemetry", config)
    seen = admin_node.upstream_headers(path, {"traceparent": f"00-{TRACE}-00f067aa0ba902b7-01"})
    assert seen["traceparent"].split("-")[1] == TRACE
    wait_until(lambda: len(http_sink.requests) >= 1)
    spans = [
        span
        for url_path, _, body in http_sink.requests
        if url_path == "/v1/traces"
        for resource in json.loads(body)["resourceSpans"]
        for scope in resource["scopeSpans"]
        for span in scope["spans"]
    ]
    assert {span["traceId"] for span in spans} == {TRACE}
    assert "kong" in {span["name"] for span in spans}


def test_http_log_entries_reach_the_receiver(admin_node: AdminNode, http_sink: HttpSink) -> None:
    config = {"http_endpoint": http_sink.url("/logs"), "queue": FAST_QUEUE}
    path = admin_node.plugin_route("http-log", config)
    for i in range(2):
        assert admin_node.request("GET", f"{path}/item/{i}")[0] == 200
    wait_until(lambda: len(http_sink.requests) == 2)
    records = [json.loads(body) for _, _, body in http_sink.requests]
    assert sorted(r["request"]["uri"] for r in records) == [f"{path}/item/{i}" for i in range(2)]
    assert {r["route"]["name"] for r in records} == {"http-log"}
    assert {r["service"]["name"] for r in records} == {"echo"}


def test_tcp_log_lines_reach_the_receiver(admin_node: AdminNode) -> None:
    sink = TcpSink()
    try:
        path = admin_node.plugin_route("tcp-log", {"host": "127.0.0.1", "port": sink.port})
        for i in range(2):
            assert admin_node.request("GET", f"{path}/{i}")[0] == 200
        wait_until(lambda: len(sink.lines()) == 2)
        records = [json.loads(line) for line in sink.lines()]
        assert sorted(r["request"]["uri"] for r in records) == [f"{path}/0", f"{path}/1"]
    finally:
        sink.close()


def test_file_log_writes_json_lines(admin_node: AdminNode) -> None:
    target: Path = admin_node.tmp / "access.log"
    path = admin_node.plugin_route("file-log", {"path": str(target)})
    assert admin_node.request("GET", f"{path}/a")[0] == 200
    assert admin_node.request("GET", f"{path}/b")[0] == 200

    def lines() -> list[str]:
        return target.read_text().splitlines() if target.exists() else []

    wait_until(lambda: len(lines()) == 2)
    records = [json.loads(line) for line in lines()]
    assert [r["request"]["uri"] for r in records] == [f"{path}/a", f"{path}/b"]
    assert records[0]["response"]["status"] == 200
