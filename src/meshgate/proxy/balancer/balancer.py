"""``Balancer``: one cluster's targets, the algorithm that picks among them, and their health.

Lifecycle: the runtime builds a ``Balancer`` per cluster for each snapshot, passing the
previous snapshot's balancer of the same cluster as ``previous``; targets that still exist are
the *same objects* (health, counters, in-flight requests, latency and the resolved DNS carry
over, and the hash ring is rebuilt identically).  It then ``await``s ``start()`` before the
snapshot goes live: ``start()`` resolves DNS-named endpoints before returning, then keeps them
fresh and runs the active health checks in background tasks until ``stop()``.

Until ``start()`` has resolved them, DNS-named endpoints have no targets (a cluster made only
of them answers ``pick`` with None), except "localhost" names, which are seeded with
127.0.0.1 so that a balancer used without ``start()`` still works against local upstreams.

Hot path (``pick``, ``on_request_*``, ``report``) is synchronous and cheap: everything derived
from health is cached and recomputed only when some target's health flips (``HEALTH_EPOCH``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import socket
import time
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from meshgate.proxy.balancer import dns
from meshgate.proxy.balancer.hashing import ConsistentHashing
from meshgate.proxy.balancer.health_active import ActiveChecker
from meshgate.proxy.balancer.health_counters import (
    SUCCESS,
    TCP_FAILURE,
    TIMEOUT,
    Thresholds,
    consume_trial,
    open_due_trials,
    record,
    settle_trial,
)
from meshgate.proxy.balancer.pickers import (
    Latency,
    LeastConnections,
    Picker,
    RoundRobin,
    observe_latency,
)
from meshgate.proxy.balancer.target import (
    DOWN_OPERATOR,
    DOWN_PASSIVE,
    HEALTH_EPOCH,
    TRIAL_IN_FLIGHT,
    TRIAL_OPEN,
    PickRequest,
    Target,
)
from meshgate.tasks import spawn

if TYPE_CHECKING:
    from meshgate import snapshot

_log = logging.getLogger("meshgate.proxy.balancer")

Outcome = Literal["ok", "tcp_error", "timeout", "http"]


class Balancer:
    """Load balancing, health and DNS for one ``snapshot.Cluster``."""

    dns_refresh_interval: ClassVar[float] = 30.0  # seconds between re-resolutions of names
    dns_retry_interval: ClassVar[float] = 5.0  # sooner, after a failed resolution
    dns_timeout: ClassVar[float] = 5.0
    dns_families: ClassVar[tuple[int, ...]] = (socket.AF_INET, socket.AF_INET6)

    def __init__(
        self,
        cluster: snapshot.Cluster,
        previous: Balancer | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cluster = cluster
        self._clock = clock
        checks = cluster.healthchecks
        self._passive = Thresholds.passive(checks.passive)
        self._passive_on = self._passive.enabled
        self._statuses_ignored = checks.passive.type == "tcp"  # only connect/timeout failures count
        self._recovery_after = checks.passive.recovery_after if self._passive_on else 0.0
        self._threshold = checks.threshold
        self._active = ActiveChecker(checks.active, lambda: self._weighted, cluster.name)
        self._checks_off = not self._passive_on and not self._active.enabled
        self._picker = _make_picker(cluster, clock)
        self._track_latency = cluster.algorithm == "latency"

        self._names = sorted(
            {ep.host for ep in cluster.endpoints if dns.ip_literal(ep.host) is None}
        )
        self._resolved: dict[str, tuple[str, ...]] = {}
        self._dns_failed: set[str] = set()
        for name in self._names:
            if previous is not None and name in previous._resolved:
                self._resolved[name] = previous._resolved[name]
            elif dns.is_localhost(name):
                self._resolved[name] = ("127.0.0.1",)

        self.targets: list[Target] = []
        self._weighted: list[Target] = []  # targets with weight > 0: the ones picked and checked
        known = {t.identity: t for t in previous.targets} if previous is not None else {}
        self._epoch = -1
        self._available = False
        self._next_retry_at = math.inf
        self._tasks: list[asyncio.Task[None]] = []
        self._started = False
        self._rebuild_targets(known)

    # ------------------------------------------------------------------ hot path

    @property
    def needs_request_data(self) -> bool:
        """Whether ``pick`` reads the request (only consistent hashing on some request value)."""
        return self._picker.needs_request_data

    def pick(self, req: PickRequest | None, exclude: Collection[Target] = ()) -> Target | None:
        """A healthy target for ``req``, avoiding ``exclude`` if possible; None means 503."""
        if self._epoch != HEALTH_EPOCH.value:
            self._refresh_health()
        if self._next_retry_at < math.inf and self._clock() >= self._next_retry_at:
            open_due_trials(self._weighted, self._clock())
            self._refresh_health()
        if not self._available:
            return None
        target = self._picker.pick(req, exclude)
        if target is not None and target.trial == TRIAL_OPEN:
            consume_trial(target, self._clock(), self._recovery_after)
        return target

    def on_request_start(self, t: Target) -> None:
        t.in_flight += 1

    def on_request_end(self, t: Target, elapsed_s: float) -> None:
        if t.in_flight > 0:
            t.in_flight -= 1
        if self._track_latency:
            observe_latency(t, elapsed_s, self._clock())

    def report(self, t: Target, outcome: Outcome, status: int | None = None) -> None:
        """Passive health bookkeeping for one upstream attempt (statuses classified by config)."""
        if not self._passive_on:
            return
        if outcome == "ok" or outcome == "http":
            result = SUCCESS if self._statuses_ignored else self._passive.classify_status(status)
            if result is None:
                return
            if (
                result == SUCCESS
                and t.healthy
                and not (t.trial or t.tcp_failures or t.timeouts or t.http_failures)
            ):
                return
        else:
            result = TCP_FAILURE if outcome == "tcp_error" else TIMEOUT
        if t.trial == TRIAL_IN_FLIGHT:
            settle_trial(t, result, self._clock(), self._recovery_after)
            return
        was_healthy = t.healthy
        record(t, result, self._passive, DOWN_PASSIVE)
        if was_healthy and not t.healthy:
            t.retry_at = self._clock() + self._recovery_after

    # ------------------------------------------------------------------ operator, admin

    def set_health(self, address_or_host: str, port: int, healthy: bool) -> int:
        """Operator override for the targets matching address (or host) and port; returns how many."""
        matched = 0
        for t in self.targets:
            if t.port == port and address_or_host in (t.address, t.host):
                t.set_health(healthy, DOWN_OPERATOR)
                matched += 1
        return matched

    def health_report(self) -> list[dict[str, Any]]:
        """Per target: host, address, port, weight, health (Kong's words) and counters."""
        report: list[dict[str, Any]] = []
        for t in self.targets:
            if not t.healthy:
                health = "UNHEALTHY"
            elif self._checks_off:
                health = "HEALTHCHECKS_OFF"
            else:
                health = "HEALTHY"
            report.append(
                {
                    "host": t.host,
                    "address": t.address,
                    "port": t.port,
                    "weight": t.weight,
                    "health": health,
                    "down_reason": t.down_reason,
                    "in_flight": t.in_flight,
                    "counters": {
                        "successes": t.successes,
                        "tcp_failures": t.tcp_failures,
                        "timeouts": t.timeouts,
                        "http_failures": t.http_failures,
                    },
                }
            )
        resolved_names = {t.host for t in self.targets}
        for ep in self.cluster.endpoints:
            if ep.host in self._names and ep.host not in resolved_names:
                report.append(
                    {
                        "host": ep.host,
                        "address": None,
                        "port": ep.port,
                        "weight": ep.weight,
                        "health": "DNS_ERROR",
                    }
                )
        return report

    # ------------------------------------------------------------------ background work

    async def start(self) -> None:
        """Resolve DNS names (before returning), then refresh them and run active checks."""
        if self._started:
            return
        self._started = True
        name = self.cluster.name
        if self._names:
            await self.resolve_names()
            self._tasks.append(spawn(self._dns_loop(), name=f"balancer-dns:{name}"))
        if self._active.enabled:
            self._tasks.extend(self._active.start())

    async def stop(self) -> None:
        """Stop the background tasks (health state stays on the targets)."""
        self._started = False
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def check_now(self) -> None:
        """Run one round of active checks over every target (tests, admin 'check now')."""
        await self._active.check(self._weighted)

    async def resolve_names(self) -> bool:
        """Resolve every DNS name once; keeps the last good addresses on failure.

        Returns True when every name resolved.
        """
        results = await asyncio.gather(
            *(dns.resolve(n, self.dns_families, self.dns_timeout) for n in self._names),
            return_exceptions=True,
        )
        changed = False
        for name, result in zip(self._names, results, strict=True):
            if isinstance(result, dns.ResolveError):
                if name not in self._dns_failed:
                    _log.warning("cluster %s: %s", self.cluster.name, result)
                self._dns_failed.add(name)
                continue
            if isinstance(result, BaseException):
                raise result
            self._dns_failed.discard(name)
            if self._resolved.get(name) != result:
                self._resolved[name] = result
                changed = True
        if changed:
            self._rebuild_targets({t.identity: t for t in self.targets})
        return not self._dns_failed

    async def _dns_loop(self) -> None:
        ok = True
        while True:
            await asyncio.sleep(self.dns_refresh_interval if ok else self.dns_retry_interval)
            ok = await self.resolve_names()

    # ------------------------------------------------------------------ internals

    def _rebuild_targets(self, known: dict[tuple[str, str, int], Target]) -> None:
        targets: list[Target] = []
        seen: set[tuple[str, str, int]] = set()
        for ep in self.cluster.endpoints:
            literal = dns.ip_literal(ep.host)
            addresses = (literal,) if literal is not None else self._resolved.get(ep.host, ())
            for address in addresses:
                identity = (ep.host, address, ep.port)
                if identity in seen:
                    continue
                seen.add(identity)
                target = known.get(identity)
                if target is None:
                    target = Target(ep.host, address, ep.port, ep.weight)
                else:
                    target.weight = ep.weight
                targets.append(target)
        self.targets = targets
        self._weighted = [t for t in targets if t.weight > 0]
        self._picker.set_targets(self._weighted)
        self._epoch = -1

    def _refresh_health(self) -> None:
        """Recompute what is derived from health: availability, next trial, picker state."""
        self._epoch = HEALTH_EPOCH.value
        total = healthy = 0
        next_retry_at = math.inf
        for t in self._weighted:
            total += t.weight
            if t.healthy:
                healthy += t.weight
            elif t.down_reason == DOWN_PASSIVE and t.retry_at < next_retry_at:
                next_retry_at = t.retry_at
        self._next_retry_at = next_retry_at if self._recovery_after > 0 else math.inf
        self._available = healthy > 0 and healthy * 100 >= self._threshold * total
        self._picker.refresh_health()


def _make_picker(cluster: snapshot.Cluster, clock: Callable[[], float]) -> Picker:
    if cluster.algorithm == "consistent-hashing":
        return ConsistentHashing(cluster)
    if cluster.algorithm == "least-connections":
        return LeastConnections()
    if cluster.algorithm == "latency":
        return Latency(clock)
    return RoundRobin()
