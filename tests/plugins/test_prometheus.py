"""prometheus: config, Kong's metric names/labels/buckets, per-consumer labels, what is not
counted, gauges from registered sources, exposition format, multiprocess summing across
worker processes, and the per-request cost."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from meshgate.plugins.prometheus import sources
from meshgate.plugins.prometheus.exposition import CONTENT_TYPE, render_metrics
from meshgate.proxy.filters.api import Phase
from meshgate.proxy.filters.registry import validate_plugin_config
from meshgate.proxy.filters.testing import FakeContext, make_handler, run_phases
from meshgate.snapshot import Consumer, Route, Service

ALL = {"status_code_metrics": True, "latency_metrics": True, "bandwidth_metrics": True,
       "per_consumer": True}  # fmt: skip


def value(name: str, **labels: str) -> float:
    """The current value of the sample ``name`` whose labels include ``labels``."""
    text = render_metrics()[0].decode()
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def request(handler: Any, route_name: str, status: int = 200, consumer: Consumer | None = None,
            body: bytes = b"hello") -> None:  # fmt: skip
    route = Route(id=f"id-{route_name}", name=route_name)
    service = Service(id="s-prom", name="prom-svc", host="h", cluster="c")
    ctx = FakeContext("GET", "/x", route=route, service=service, consumer=consumer, take_log=False)
    run_phases(handler, ctx, upstream=(status, {}, body))


def test_config_defaults_are_all_off() -> None:
    got = validate_plugin_config("prometheus", {})
    assert got == {
        "per_consumer": False, "status_code_metrics": False, "ai_metrics": False,
        "latency_metrics": False, "bandwidth_metrics": False, "upstream_health_metrics": False,
        "wasm_metrics": False,
    }  # fmt: skip


def test_requests_are_counted_with_kongs_labels() -> None:
    handler = make_handler("prometheus", ALL)
    alice = Consumer(id="c1", username="alice")
    for status in (200, 200, 404):
        request(handler, "prom-count", status, consumer=alice)
    name = "kong_http_requests_total"
    assert value(name, route="prom-count", code="200", consumer="alice", service="prom-svc",
                 workspace="default") == 2  # fmt: skip
    assert value(name, route="prom-count", code="404") == 1
    # no upstream exchange in the fake: the response did not come from a service
    assert value(name, route="prom-count", source="kong") == 3


def test_consumer_label_only_with_per_consumer() -> None:
    handler = make_handler("prometheus", {**ALL, "per_consumer": False})
    request(handler, "prom-anon", consumer=Consumer(id="c2", username="bob"))
    assert value("kong_http_requests_total", route="prom-anon", consumer="") == 1


def test_latency_and_bandwidth() -> None:
    handler = make_handler("prometheus", ALL)
    request(handler, "prom-lat", body=b"x" * 100)
    assert value("kong_request_latency_ms_count", route="prom-lat") == 1
    assert value("kong_kong_latency_ms_count", route="prom-lat") == 1
    assert value("kong_kong_latency_ms_bucket", route="prom-lat", le="6000.0") == 1
    assert value("kong_upstream_latency_ms_count", route="prom-lat") == 0  # never went upstream
    # the parser reports Kong's suffix-less counter as *_total (the text has no suffix)
    assert value("kong_bandwidth_bytes_total", route="prom-lat", direction="egress") == 100
    assert value("kong_bandwidth_bytes_total", route="prom-lat", direction="ingress") > 0
    assert 'kong_bandwidth_bytes{consumer="",direction="egress",route="prom-lat"' in (
        render_metrics()[0].decode()
    )


def test_disabled_groups_and_unrouted_requests_are_not_counted() -> None:
    handler = make_handler("prometheus", {})
    request(handler, "prom-off")
    assert value("kong_http_requests_total", route="prom-off") == 0
    counting = make_handler("prometheus", ALL)
    run_phases(counting, FakeContext("GET", "/", take_log=False))  # no route
    assert value("kong_http_requests_total", route="") == 0


def test_exposition_format_is_kongs() -> None:
    handler = make_handler("prometheus", ALL)
    request(handler, "prom-text")
    body, content_type = render_metrics()
    text = body.decode()
    assert content_type == CONTENT_TYPE
    assert "# TYPE kong_http_requests_total counter" in text
    assert "# TYPE kong_bandwidth_bytes counter" in text
    assert "kong_bandwidth_bytes_total" not in text
    assert "_created" not in text
    assert "# TYPE kong_request_latency_ms histogram" in text
    assert 'kong_node_info{node_id="' in text
    assert "process_resident_memory_bytes" in text  # prometheus-client's process collector


def test_gauges_from_registered_sources() -> None:
    asyncio.run(_gauges_from_registered_sources())


async def _gauges_from_registered_sources() -> None:
    handler = make_handler("prometheus", {"upstream_health_metrics": True})
    targets = [
        sources.TargetHealth("pool", "a.test:80", "10.0.0.1:80", "healthy"),
        sources.TargetHealth("pool", "b.test:80", "", "dns_error"),
    ]
    sources.set_upstream_health_source(lambda: targets)
    sources.set_connections_source(lambda: {"active": 3, "accepted": 10})
    name = "kong_upstream_target_health"
    try:
        assert value(name, target="a.test:80", state="healthy") == 0  # not started: not wanted
        await handler.start()
        assert value(name, target="a.test:80", state="healthy") == 1
        assert value(name, target="a.test:80", state="unhealthy") == 0
        assert value(name, target="b.test:80", state="dns_error", address="") == 1
        assert value("meshgate_connections", state="active") == 3
        targets.pop()
        assert value(name, target="b.test:80", state="dns_error") == 0  # gone
        await handler.stop()  # nobody wants health any more
        assert value(name, target="a.test:80", state="healthy") == 0
    finally:
        await handler.stop()
        sources.set_upstream_health_source(None)
        sources.set_connections_source(None)


WORKER = """
import sys
from meshgate.proxy.filters.testing import FakeContext, make_handler, run_phases
from meshgate.plugins.prometheus import sources
from meshgate.snapshot import Route
h = make_handler("prometheus", {"status_code_metrics": True, "latency_metrics": True})
for _ in range(int(sys.argv[1])):
    run_phases(h, FakeContext("GET", "/", route=Route(id="r", name="mp"), take_log=False))
sources.sample()
"""

RENDER = """
from meshgate.plugins.prometheus.exposition import render_metrics
print(render_metrics()[0].decode())
"""


def test_multiprocess_mode_sums_worker_processes(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for count in (3, 4):
        subprocess.run([sys.executable, "-c", textwrap.dedent(WORKER), str(count)], env=env,
                       check=True, timeout=60)  # fmt: skip
    out = subprocess.run([sys.executable, "-c", RENDER], env=env, check=True, timeout=60,
                         capture_output=True, text=True).stdout  # fmt: skip
    samples = {
        (s.name, s.labels.get("route"), s.labels.get("le")): s.value
        for family in text_string_to_metric_families(out)
        for s in family.samples
    }
    assert samples[("kong_http_requests_total", "mp", None)] == 7
    assert samples[("kong_request_latency_ms_count", "mp", None)] == 7
    assert any(name.startswith("meshgate_worker_resident_memory_bytes") for name, _, _ in samples)


def test_log_phase_cost() -> None:
    handler = make_handler("prometheus", ALL)
    ctx = FakeContext("GET", "/", route=Route(id="r-cost", name="cost"), take_log=False,
                      consumer=Consumer(id="c", username="u"))  # fmt: skip
    ctx.phase = Phase.LOG
    ctx.status = 200
    n = 5000
    started = time.perf_counter()
    for _ in range(n):
        handler.log(ctx)
    per_request_us = (time.perf_counter() - started) / n * 1e6
    assert per_request_us < 200  # typically a few µs; generous for noisy machines
    assert value("kong_http_requests_total", route="cost") == n
