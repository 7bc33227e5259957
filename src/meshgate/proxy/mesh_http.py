"""Compile the mesh's HTTP fields of a snapshot into a ``CompiledConfig`` (once per snapshot).

``Route.listeners``/``priority`` → per-listener routers; ``Route.backends`` → a
``WeightedChoice``; ``Route.request_headers``/``response_headers`` → ``HeaderEdit``s;
``Service.retry``/``request_timeout_ms``/``idle_timeout_ms`` and ``Cluster.limits`` → a
``ServicePolicy``.  A snapshot using none of them leaves the config exactly as it was.
Circuit-breaker counters (``LimitState``) carry over from the previous config when their
cluster's limits did not change, so requests in flight across a reload stay counted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from meshgate.proxy.compiled import CompiledConfig, CompiledRoute, CompiledService
from meshgate.proxy.http.policy import (
    HeaderEdit,
    LimitState,
    RetryPlan,
    ServicePolicy,
    WeightedChoice,
)
from meshgate.proxy.router import Router

if TYPE_CHECKING:
    from meshgate import snapshot


def compile_mesh_http(
    config: CompiledConfig,
    entries: Sequence[tuple[snapshot.Route, CompiledRoute]],
    previous: CompiledConfig | None,
    *,
    scoped: bool,
) -> None:
    """Fill ``config``'s service policies and, when some route is ``scoped`` to listeners,
    its per-listener routers from ``entries`` (the routes it was built from, whose own mesh
    fields ``compile_route_fields`` filled in when they were compiled)."""
    _compile_policies(config, previous)
    if scoped:
        built = None if previous is None else (previous.router, previous.listener_routers)
        config.router, config.listener_routers = Router.build_per_listener(entries, built)


def header_edit(modifier: snapshot.HeaderModifier | None, *, request: bool) -> HeaderEdit | None:
    if modifier is None or not (modifier.remove or modifier.set or modifier.add):
        return None
    return HeaderEdit(modifier.remove, modifier.set, modifier.add, request=request)


def retry_plan(policy: snapshot.RetryPolicy) -> RetryPlan:
    return RetryPlan(
        policy.num_retries,
        policy.retry_on,
        policy.retriable_status_codes,
        policy.per_try_timeout_ms,
        policy.backoff_base_ms,
        policy.backoff_max_ms,
    )


def compile_route_fields(
    route: snapshot.Route, croute: CompiledRoute, services: Mapping[str, CompiledService]
) -> None:
    """``route``'s backends split and header edits, compiled into ``croute``."""
    if route.backends:
        weighted: list[tuple[CompiledService, int]] = []
        for backend in route.backends:
            service = services.get(backend.service)
            if service is None:
                raise ValueError(f"route {route.id} splits to unknown service {backend.service!r}")
            if service.service.enabled:
                weighted.append((service, backend.weight))
        croute.backends = WeightedChoice(weighted)
    croute.request_edit = header_edit(route.request_headers, request=True)
    croute.response_edit = header_edit(route.response_headers, request=False)


def _compile_policies(config: CompiledConfig, previous: CompiledConfig | None) -> None:
    old_limits: dict[str, tuple[snapshot.ConnectionLimits, LimitState]] = {}
    if previous is not None:
        for old in previous.services.values():
            if old.policy is not None and old.policy.limits is not None:
                cluster = old.balancer.cluster
                if cluster.limits is not None:
                    old_limits[cluster.name] = (cluster.limits, old.policy.limits)
    limits_of: dict[str, LimitState] = {}
    for csvc in config.services.values():
        svc = csvc.service
        cluster = csvc.balancer.cluster
        limits: LimitState | None = None
        if cluster.limits is not None:
            limits = limits_of.get(cluster.name)
            if limits is None:
                kept = old_limits.get(cluster.name)
                if kept is not None and kept[0] == cluster.limits:
                    limits = kept[1]
                else:
                    spec = cluster.limits
                    limits = LimitState(
                        spec.max_connections,
                        spec.max_pending_requests,
                        spec.max_requests,
                        spec.max_retries,
                    )
                limits_of[cluster.name] = limits
        retry = retry_plan(svc.retry) if svc.retry is not None else None
        request_timeout = None if svc.request_timeout_ms is None else svc.request_timeout_ms / 1000
        idle_timeout = None if svc.idle_timeout_ms is None else svc.idle_timeout_ms / 1000
        if retry is None and request_timeout is None and idle_timeout is None and limits is None:
            continue
        csvc.policy = ServicePolicy(retry, request_timeout, idle_timeout, limits)
