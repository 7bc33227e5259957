"""prometheus's per-series accumulators: what is scraped after N requests is what
prometheus-client gives when each request is observed on its own (counts, every histogram
bucket and sum, bandwidth), across statuses, sources, consumers and flushes."""

from __future__ import annotations

import random
from types import SimpleNamespace

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.parser import text_string_to_metric_families

from meshgate.plugins.prometheus import metrics
from meshgate.plugins.prometheus.exposition import render_metrics
from meshgate.plugins.prometheus.pending import pending
from meshgate.proxy.filters.api import Phase
from meshgate.proxy.filters.testing import FakeContext, make_handler
from meshgate.snapshot import Consumer, Route, Service

ALL = {"status_code_metrics": True, "latency_metrics": True, "bandwidth_metrics": True,
       "per_consumer": True}  # fmt: skip
_SERVICE = Service(id="s-series", name="series-svc", host="h", cluster="c")


def _samples(route: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``route``'s series: (name, sorted labels but route/service) -> value."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(render_metrics()[0].decode()):
        for sample in family.samples:
            if sample.labels.get("route") != route or sample.name.endswith("_created"):
                continue
            labels = tuple(sorted((k, v) for k, v in sample.labels.items()
                                  if k not in ("route", "service", "workspace")))  # fmt: skip
            out[(sample.name, labels)] = sample.value
    return out


def _reference(
    requests: list[dict[str, object]],
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The same requests observed one by one on plain prometheus-client metrics."""
    registry = CollectorRegistry()
    labels = ["service", "route", "workspace"]
    total = Counter("kong_http_requests", "", ["code", "source", "consumer"], registry=registry)
    hists = [
        Histogram(name, "", labels, buckets=buckets, registry=registry)
        for name, buckets in (
            ("kong_request_latency_ms", metrics.UPSTREAM_LATENCY_BUCKETS),
            ("kong_upstream_latency_ms", metrics.UPSTREAM_LATENCY_BUCKETS),
            ("kong_kong_latency_ms", metrics.KONG_LATENCY_BUCKETS),
        )
    ]
    band = Counter("kong_bandwidth_bytes", "", ["direction", "consumer"], registry=registry)
    for r in requests:
        consumer = str(r["consumer"])
        total.labels(str(r["status"]), str(r["source"]), consumer).inc()
        band.labels("ingress", consumer).inc(0)  # the series exists once a request was seen
        band.labels("egress", consumer).inc(float(r["egress"]))  # type: ignore[arg-type]
        values = (r["request_ms"], r["proxy_ms"], r["kong_ms"])
        for hist, ms in zip(hists, values, strict=True):
            child = hist.labels("", "", "")  # labels compared without service/route
            if ms is not None:
                child.observe(float(ms))  # type: ignore[arg-type]
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in registry.collect():
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            kept = tuple(sorted((k, v) for k, v in sample.labels.items()
                                if k not in ("route", "service", "workspace")))  # fmt: skip
            out[(sample.name, kept)] = sample.value
    return out


def test_scraped_series_equal_one_observation_per_request() -> None:
    handler = make_handler("prometheus", ALL)
    route = Route(id="id-series", name="series")
    rng = random.Random(7)
    people = [Consumer(id="c1", username="ann"), None]
    seen: list[dict[str, object]] = []
    for i in range(400):
        consumer = people[i % 2]
        ctx = FakeContext("GET", "/x", route=route, service=_SERVICE, consumer=consumer,
                          take_log=False)  # fmt: skip
        started = ctx.req.started_at
        request_ms = rng.choice([0.0, 0.4, 1.0, 3.0, 25.0, 80.0, 250.0, 9000.0, 70000.0])
        via_upstream = i % 3 != 0
        sent_ms = request_ms * rng.random()
        head_ms = sent_ms + (request_ms - sent_ms) * rng.random()
        ctx.t_end = started + request_ms / 1000.0
        ctx.status = rng.choice([200, 200, 404, 503])
        ctx.bytes_sent = rng.choice([0, 10, 1234])
        if via_upstream:
            ctx.exchange = SimpleNamespace(status=ctx.status, t_sent=started + sent_ms / 1000.0,
                                           t_head=started + head_ms / 1000.0)  # fmt: skip
        ex = ctx.exchange
        ctx.phase = Phase.LOG
        handler.log(ctx)
        if i % 97 == 0:
            pending().flush()  # flushes in between must not lose or double anything
        seen.append({
            "status": ctx.status, "source": "service" if via_upstream else "kong",
            "consumer": consumer.username if consumer else "", "egress": ctx.bytes_sent,
            "request_ms": (ctx.t_end - started) * 1000.0,  # as the engine's figures are
            "proxy_ms": (ex.t_head - ex.t_sent) * 1000.0 if via_upstream else None,
            "kong_ms": ((ex.t_sent if via_upstream else ctx.t_end) - started) * 1000.0,
        })  # fmt: skip
    scraped = _samples("series")
    expected = _reference(seen)
    ingress = {k: v for k, v in scraped.items() if ("direction", "ingress") in k[1]}
    assert all(v > 0 for v in ingress.values())
    assert len(ingress) == 2
    without_ingress = {k: v for k, v in scraped.items() if ("direction", "ingress") not in k[1]}
    expected = {k: v for k, v in expected.items() if ("direction", "ingress") not in k[1]}
    assert without_ingress.keys() == expected.keys()
    for key, want in expected.items():
        assert abs(without_ingress[key] - want) < 1e-6 * max(1.0, abs(want)), key
    assert scraped[("kong_request_latency_ms_count", ())] == 400


def test_n_requests_through_the_log_phase_scrape_as_n() -> None:
    handler = make_handler("prometheus", ALL)
    route = Route(id="id-series-n", name="series-n")
    ctx = FakeContext("GET", "/", route=route, service=_SERVICE, take_log=False)
    ctx.phase = Phase.LOG
    ctx.status = 200
    for _ in range(1234):
        handler.log(ctx)
    scraped = _samples("series-n")
    assert scraped[("kong_http_requests_total", (("code", "200"), ("consumer", ""),
                                                 ("source", "kong")))] == 1234  # fmt: skip
    assert scraped[("kong_kong_latency_ms_count", ())] == 1234
    assert scraped[("kong_request_latency_ms_bucket", (("le", "+Inf"),))] == 1234
    assert scraped[("kong_upstream_latency_ms_count", ())] == 0  # never went upstream
