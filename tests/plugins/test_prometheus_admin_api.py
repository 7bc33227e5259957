"""prometheus enabled globally through the Admin API of a ``meshgate run --store`` node:
proxied requests show up in the Admin API's ``/metrics`` with Kong's labels, whichever
worker served them, within ``FLUSH_DELAY`` (the worker flushes its pending counts soon
after a request, not only on the sampler's second)."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from meshgate.plugins.prometheus.pending import FLUSH_DELAY, pending
from meshgate.proxy.filters.testing import FakeContext, arun_phases, make_handler
from meshgate.snapshot import Route, Service
from testkit import EchoUpstreams, Gateway, free_port


def _admin(
    gw: Gateway, method: str, path: str, body: dict[str, Any] | None = None
) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        f"http://127.0.0.1:{gw.admin_port}{path}",
        data=data,
        method=method,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _requests_total(metrics: str) -> list[tuple[dict[str, str], float]]:
    """``kong_http_requests_total`` samples: (labels, value)."""
    return [
        (dict(sample.labels), sample.value)
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.name == "kong_http_requests_total"
    ]


def _counted(gw: Gateway, want: float, deadline_s: float = 10.0) -> str:
    """``/metrics`` once it counts ``want`` requests (workers flush within FLUSH_DELAY; the
    deadline only bounds a broken flush)."""
    give_up = time.monotonic() + deadline_s
    while True:
        status, raw = _admin(gw, "GET", "/metrics")
        assert status == 200
        text = raw.decode()
        if sum(value for _, value in _requests_total(text)) >= want:
            return text
        if time.monotonic() > give_up:
            return text
        time.sleep(0.02)


def test_the_log_phase_flushes_soon_without_the_sampler() -> None:
    handler: Any = make_handler("prometheus", {"status_code_metrics": True})
    route = Route(id="id-prom-flush", name="prom-flush")
    service = Service(id="s-prom-flush", name="flush-svc", host="h", cluster="c")
    child = handler.requests.labels("flush-svc", "prom-flush", "200", "kong", "default", "")
    before = child._value.get()

    async def run() -> tuple[float, float]:
        ctx = FakeContext("GET", "/x", route=route, service=service, take_log=False)
        await arun_phases(handler, ctx, upstream=(200, {}, b"ok"))
        right_after = child._value.get()
        assert pending().flush_due
        await asyncio.sleep(FLUSH_DELAY * 3)
        return right_after, child._value.get()

    right_after, later = asyncio.run(run())
    assert right_after == before  # counted in the worker's pending dict first
    assert later == before + 1  # flushed by the loop, the sampler never started
    assert not pending().flush_due


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_global_prometheus_added_by_admin_api_counts_proxied_requests(
    tmp_path: Path, echo_upstreams: EchoUpstreams, workers: int
) -> None:
    store = f"sqlite:///{tmp_path}/meshgate.db"
    gw = Gateway(None, free_port(), "--store", store, workers=workers)
    try:
        upstream = f"http://127.0.0.1:{echo_upstreams.ports[0]}"
        status, body = _admin(gw, "POST", "/services", {"name": "svc", "url": upstream})
        assert status == 201, body
        status, body = _admin(gw, "POST", "/services/svc/routes", {"name": "r", "paths": ["/p"]})
        assert status == 201, body
        config = {"status_code_metrics": True, "per_consumer": False}
        status, body = _admin(gw, "POST", "/plugins", {"name": "prometheus", "config": config})
        assert status == 201, body
        for _ in range(6):
            assert gw.request("GET", "/p/x")[0] == 200
        assert gw.request("GET", "/nowhere")[0] == 404  # no route: not counted (as Kong)
        totals = _requests_total(_counted(gw, 6))
        labels = {"service": "svc", "route": "r", "code": "200", "source": "service",
                  "workspace": "default", "consumer": ""}  # fmt: skip
        assert totals == [(labels, 6.0)]
    finally:
        gw.stop()
