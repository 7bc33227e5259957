"""prometheus: count every proxied request in the log phase (Kong's behaviour and PRIORITY
13): ``kong_http_requests_total`` (status_code_metrics), the three latency histograms
(latency_metrics), ``kong_bandwidth_bytes`` (bandwidth_metrics), with the consumer's
username as ``consumer`` label when ``per_consumer``.  Requests that matched no route are
not counted (as Kong).

Per request: a few attribute reads and, per label combination, a cached child lookup —
labelled children are resolved once and kept (bounded) so the hot path does no label
hashing inside prometheus-client.  A node-wide sampler (one per process, shared by every
instance and snapshot) refreshes the gauges of ``sources`` every second while any
prometheus instance is live.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from typing import Any

from meshgate import tasks
from meshgate.plugins._shared.facts import log_facts
from meshgate.proxy.filters.api import CompileEnv, PluginHandler, RequestContext
from meshgate.snapshot import PluginInstance

from . import metrics, sources
from .pending import pending
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
        if config.upstream_health_metrics:
            sources.want_upstream_health(self)
        self.sampler: Sampler = env.node_resource("prometheus:sampler", Sampler)
        self.started = False
        self.children: dict[tuple[Any, ...], Any] = {}
        self.upstream_bounds = [*map(float, metrics.UPSTREAM_LATENCY_BUCKETS), math.inf]
        self.kong_bounds = [*map(float, metrics.KONG_LATENCY_BUCKETS), math.inf]

    async def start(self) -> None:
        if not self.started:
            self.started = True
            self.sampler.acquire()

    async def stop(self) -> None:
        if self.started:
            self.started = False
            await self.sampler.release()

    def log(self, ctx: RequestContext) -> None:
        route = ctx.route
        if route is None or not self.counts_anything:
            return
        facts = log_facts(ctx)
        consumer = ""
        if self.per_consumer:
            who = ctx.consumer
            if who is not None and who.username is not None:
                consumer = who.username
        children = self.children
        pend = pending()
        rid = route.id
        if self.requests is not None:
            status_key = ("s", rid, ctx.status, facts.from_service, consumer)
            counter = children.get(status_key)
            if counter is None:
                counter = self._status_child(ctx, status_key, facts.from_service, consumer)
            pend.inc(counter)
        if self.latency is not None:
            trio = children.get(("l", rid))
            if trio is None:
                trio = self._latency_children(ctx, ("l", rid))
            request_h, upstream_h, kong_h = trio
            observe = pend.observe
            observe(request_h, self.upstream_bounds, facts.request_ms)
            if facts.proxy_ms is not None and facts.proxy_ms >= 0:
                observe(upstream_h, self.upstream_bounds, facts.proxy_ms)
            if facts.kong_ms >= 0:
                observe(kong_h, self.kong_bounds, facts.kong_ms)
        if self.bandwidth is not None:
            pair = children.get(("b", rid, consumer))
            if pair is None:
                pair = self._bandwidth_children(ctx, ("b", rid, consumer), consumer)
            if facts.ingress_bytes > 0:
                pend.inc(pair[0], facts.ingress_bytes)
            if facts.egress_bytes > 0:
                pend.inc(pair[1], facts.egress_bytes)
        if not pend.flush_due:
            pend.schedule_flush()

    def _remember(self, key: tuple[Any, ...], child: Any) -> Any:
        children = self.children
        if len(children) >= _CACHE_LIMIT:
            children.clear()
        children[key] = child
        return child

    def _status_child(
        self, ctx: RequestContext, key: tuple[Any, ...], from_service: bool, consumer: str
    ) -> Any:
        assert self.requests is not None
        service, route = _names(ctx)
        source = "service" if from_service else "kong"
        child = self.requests.labels(service, route, str(ctx.status), source, WS, consumer)
        return self._remember(key, child)

    def _latency_children(self, ctx: RequestContext, key: tuple[Any, ...]) -> Any:
        assert self.latency is not None
        service, route = _names(ctx)
        return self._remember(key, tuple(h.labels(service, route, WS) for h in self.latency))

    def _bandwidth_children(self, ctx: RequestContext, key: tuple[Any, ...], consumer: str) -> Any:
        assert self.bandwidth is not None
        service, route = _names(ctx)
        pair = (
            self.bandwidth.labels(service, route, "ingress", WS, consumer),
            self.bandwidth.labels(service, route, "egress", WS, consumer),
        )
        return self._remember(key, pair)


def _names(ctx: RequestContext) -> tuple[str, str]:
    """Kong's labels: service name (or host), route name (or id)."""
    service, route = ctx.service, ctx.route
    service_name = str(service.name or service.host or "") if service is not None else ""
    route_name = (route.name or route.id) if route is not None else ""
    return service_name, route_name
