"""prometheus: count every proxied request in the log phase (Kong's behaviour and PRIORITY
13): ``kong_http_requests_total`` (status_code_metrics), the three latency histograms
(latency_metrics), ``kong_bandwidth_bytes`` (bandwidth_metrics), with the consumer's
username as ``consumer`` label when ``per_consumer``.  Requests that matched no route are
not counted (as Kong).

Per request: a few attribute reads, one lookup of the request's ``Series`` (its labelled
children, resolved once per route/status/source/consumer and kept, bounded) and additions
into that series' accumulator (``pending``): label sets are built only for a series never
seen, and prometheus-client is touched only when the accumulators are flushed.  A node-wide sampler (one per process, shared by every
instance and snapshot) refreshes the gauges of ``sources`` every second while any
prometheus instance is live.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from bisect import bisect_left

from meshgate import tasks
from meshgate.plugins._shared.facts import log_figures
from meshgate.proxy.filters.api import CompileEnv, PluginHandler, RequestContext
from meshgate.snapshot import PluginInstance

from . import metrics, sources
from .pending import EGRESS, INGRESS, KONG_SUM, REQUEST_SUM, UPSTREAM_SUM, Series, pending
from .schema import Config

_CACHE_LIMIT = 20000
WS = metrics.WORKSPACE


class Sampler:
    """Runs ``sources.sample`` periodically while at least one handler holds it."""

    def __init__(self) -> None:
        self.holders = 0
        self.task: asyncio.Task[None] | None = None

    def acquire(self) -> None:
        self.holders += 1
        if self.task is None:
            self.task = tasks.spawn(self._run(), name="prometheus-sampler")

    async def release(self) -> None:
        self.holders -= 1
        if self.holders <= 0 and self.task is not None:
            task, self.task = self.task, None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            sources.sample()
            await asyncio.sleep(sources.SAMPLE_INTERVAL)


class Handler(PluginHandler):
    name = "prometheus"
    PRIORITY = 13
    VERSION = "3.9.1"

    def __init__(self, config: Config, instance: PluginInstance, env: CompileEnv) -> None:
        super().__init__(config, instance, env)
        self.per_consumer = config.per_consumer
        self.requests = metrics.http_requests() if config.status_code_metrics else None
        self.latency = metrics.latency() if config.latency_metrics else None
        self.bandwidth = metrics.bandwidth() if config.bandwidth_metrics else None
        self.counts_anything = bool(self.requests or self.latency or self.bandwidth)
        self.wants_health = config.upstream_health_metrics
        self.sampler: Sampler = env.node_resource("prometheus:sampler", Sampler)
        self.started = False
        # (route id, status, from the service, consumer) -> Series
        self.series: dict[tuple[str, int, bool, str], Series] = {}
        self.upstream_bounds = [*map(float, metrics.UPSTREAM_LATENCY_BUCKETS), math.inf]
        self.kong_bounds = [*map(float, metrics.KONG_LATENCY_BUCKETS), math.inf]

    async def start(self) -> None:
        if not self.started:
            self.started = True
            if self.wants_health:
                sources.want_upstream_health(self)
            self.sampler.acquire()

    async def stop(self) -> None:
        if self.started:
            self.started = False
            sources.release_upstream_health(self)
            await self.sampler.release()

    def log(self, ctx: RequestContext) -> None:
        route = ctx.route
        if route is None or not self.counts_anything:
            return
        request_ms, kong_ms, proxy_ms, ingress, egress, from_service, _ = log_figures(ctx)
        consumer = ""
        if self.per_consumer:
            who = ctx.consumer
            if who is not None and who.username is not None:
                consumer = who.username
        key = (route.id, ctx.status, from_service, consumer)
        series = self.series.get(key)
        if series is None:
            series = self._new_series(ctx, key)
        pend = pending()
        acc = pend.series.get(series)
        if acc is None:
            acc = pend.track(series)
        acc[0] += 1
        if self.latency is not None:
            bounds = self.upstream_bounds
            acc[REQUEST_SUM] += request_ms
            acc[REQUEST_SUM + 1 + bisect_left(bounds, request_ms)] += 1
            if proxy_ms is not None and proxy_ms >= 0:
                acc[UPSTREAM_SUM] += proxy_ms
                acc[UPSTREAM_SUM + 1 + bisect_left(bounds, proxy_ms)] += 1
            if kong_ms >= 0:
                acc[KONG_SUM] += kong_ms
                acc[KONG_SUM + 1 + bisect_left(self.kong_bounds, kong_ms)] += 1
        if ingress > 0:
            acc[INGRESS] += ingress
        if egress > 0:
            acc[EGRESS] += egress
        if not pend.flush_due:
            pend.schedule_flush()

    def _new_series(self, ctx: RequestContext, key: tuple[str, int, bool, str]) -> Series:
        """The children of a kind of request not seen yet (this builds the label sets)."""
        _, status, from_service, consumer = key
        service, route = _names(ctx)
        requests = None
        if self.requests is not None:
            source = "service" if from_service else "kong"
            requests = self.requests.labels(service, route, str(status), source, WS, consumer)
        latency = None
        if self.latency is not None:
            request_h, upstream_h, kong_h = (h.labels(service, route, WS) for h in self.latency)
            latency = (request_h, upstream_h, kong_h)
        bandwidth = None
        if self.bandwidth is not None:
            bandwidth = (
                self.bandwidth.labels(service, route, "ingress", WS, consumer),
                self.bandwidth.labels(service, route, "egress", WS, consumer),
            )
        if len(self.series) >= _CACHE_LIMIT:
            self.series.clear()
        series = self.series[key] = Series(requests, latency, bandwidth)
        return series


def _names(ctx: RequestContext) -> tuple[str, str]:
    """Kong's labels: service name (or host), route name (or id)."""
    service, route = ctx.service, ctx.route
    service_name = str(service.name or service.host or "") if service is not None else ""
    route_name = (route.name or route.id) if route is not None else ""
    return service_name, route_name
