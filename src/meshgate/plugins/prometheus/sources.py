"""Live node state the metrics sample: the runtime registers where to read it.

The proxy runtime (each worker, or the in-process proxy) calls:
  ``set_upstream_health_source(fn)``: ``fn()`` yields one ``TargetHealth`` per target
      address — Kong's ``kong_upstream_target_health`` labels;
  ``set_connections_source(fn)``: ``fn()`` returns ``{state: count}`` (e.g. ``active``,
      ``accepted``, ``handled``, ``total``) — ``meshgate_connections{state}``.
``sample()`` copies them (and this process's resource figures) into gauges; the
prometheus handler runs it every ``SAMPLE_INTERVAL`` seconds in each worker (so the
multiprocess files stay fresh) and ``render_metrics`` runs it once before rendering.
Upstream health is exported only while a prometheus instance with
``upstream_health_metrics`` is live (Kong: enabled when any instance enables it).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from prometheus_client import ProcessCollector

from . import metrics
from .pending import pending

_log = logging.getLogger("meshgate.plugins.prometheus")
SAMPLE_INTERVAL = 1.0


@dataclass(frozen=True, slots=True)
class TargetHealth:
    upstream: str
    target: str  # host:port as configured
    address: str  # ip:port resolved ("" for dns_error)
    state: str  # healthchecks_off | healthy | unhealthy | dns_error


HealthSource = Callable[[], Iterable[TargetHealth]]
ConnectionsSource = Callable[[], Mapping[str, float]]

_health_source: HealthSource | None = None
_connections_source: ConnectionsSource | None = None
# the handlers that asked for target health, by identity (no weak references: a compiled
# handler takes none)
_health_wanted: set[int] = set()
_process = ProcessCollector(registry=None)
_last_health: set[tuple[str, str, str]] = set()


def set_upstream_health_source(source: HealthSource | None) -> None:
    global _health_source
    _health_source = source


def set_connections_source(source: ConnectionsSource | None) -> None:
    global _connections_source
    _connections_source = source


def want_upstream_health(owner: object) -> None:
    """``owner`` (a started handler) asks for target health until it calls
    ``release_upstream_health``."""
    _health_wanted.add(id(owner))


def release_upstream_health(owner: object) -> None:
    _health_wanted.discard(id(owner))


def health_wanted() -> bool:
    return len(_health_wanted) > 0


def _sample_health() -> None:
    gauge = metrics.upstream_target_health()
    seen: set[tuple[str, str, str]] = set()
    if _health_source is not None and health_wanted():
        for item in _health_source():
            key = (item.upstream, item.target, item.address)
            seen.add(key)
            for state in metrics.HEALTH_STATES:
                gauge.labels(*key, state, "http").set(1 if item.state == state else 0)
    for key in _last_health - seen:  # targets gone (or health no longer wanted)
        for state in metrics.HEALTH_STATES:
            try:
                gauge.remove(*key, state, "http")
            except KeyError:
                pass
    _last_health.clear()
    _last_health.update(seen)


def _sample_process() -> None:
    gauges = metrics.worker_process()
    for family in _process.collect():
        for sample in family.samples:
            gauge = gauges.get(sample.name.removeprefix("process_"))
            if gauge is not None:
                gauge.set(sample.value)


def sample() -> None:
    """Copy the live state into the gauges (cheap; never raises)."""
    try:
        pending().flush()
        if _connections_source is not None:
            gauge = metrics.connections()
            for state, value in _connections_source().items():
                gauge.labels(state).set(value)
        _sample_health()
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            _sample_process()
    except Exception:
        _log.exception("prometheus: sampling node state failed")
