"""Compile a snapshot's routes into ``CompiledRoute``s at the cost of what changed.

A ``RouteBuild`` remembers, for the snapshot routes it was built from, the compiled route of
each (None for a route whose service is disabled).  The next build lines the new snapshot's
routes up with those by object identity — the gateway compiler and the snapshot diff both keep
the objects of unchanged routes — and compiles only the routes it has not seen.  When the
services or plugin chains the routes point at changed, every route is looked at again (still
keeping compiled routes that are equal to what they would be rebuilt as).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from meshgate.proxy.compiled import CompiledRoute, CompiledService
from meshgate.proxy.filters.chain import RouteChains
from meshgate.proxy.mesh_http import compile_route_fields

if TYPE_CHECKING:
    from meshgate import snapshot

_UNSEEN = object()


@dataclass(slots=True, eq=False)
class RouteBuild:
    """The compiled routes of one snapshot, lined up with its ``routes``."""

    source: tuple[snapshot.Route, ...]
    compiled: list[CompiledRoute | None]  # by position in ``source``; None: not served
    entries: list[tuple[snapshot.Route, CompiledRoute]]  # the served ones, router input
    scoped: int  # entries whose route names listeners
    changed: bool  # entries differ from those of the build this one started from
    fresh: int = 0  # routes compiled anew (not taken over) by this build


EMPTY_BUILD = RouteBuild((), [], [], 0, False)


def changed_positions(new: Sequence[object], old: Sequence[object]) -> list[int] | None:
    """Positions where ``new`` holds another object than ``old``; None when lengths differ."""
    if len(new) != len(old):
        return None
    return [i for i, (a, b) in enumerate(zip(new, old, strict=True)) if a is not b]


def build_routes(
    routes: tuple[snapshot.Route, ...],
    services: Mapping[str, CompiledService],
    chains: Mapping[str, RouteChains],
    previous: RouteBuild,
    *,
    same_targets: bool,
) -> RouteBuild:
    """Compile ``routes``.  ``same_targets``: the services and plugin chains are the very
    objects ``previous`` was built with, so a route object seen before keeps its compiled
    route without a look."""
    if not same_targets:
        return _rebuild(routes, services, chains, previous)
    if routes is previous.source:
        return RouteBuild(routes, previous.compiled, previous.entries, previous.scoped, False)
    positions = changed_positions(routes, previous.source)
    removed: list[CompiledRoute | None]
    if positions is not None:
        compiled = previous.compiled.copy()
        removed = [compiled[i] for i in positions]
        for i in positions:
            compiled[i] = _compile(routes[i], services, chains)
        added = [compiled[i] for i in positions]
    else:
        index = {id(r): c for r, c in zip(previous.source, previous.compiled, strict=True)}
        found: list[object] = [index.get(id(route), _UNSEEN) for route in routes]
        added = []
        for i, item in enumerate(found):
            if item is _UNSEEN:
                found[i] = made = _compile(routes[i], services, chains)
                added.append(made)
        compiled = found  # type: ignore[assignment]  # every _UNSEEN was replaced
        kept = {id(route) for route in routes}
        removed = [
            c for r, c in zip(previous.source, previous.compiled, strict=True) if id(r) not in kept
        ]
    if not any(c is not None for c in removed) and not any(c is not None for c in added):
        return RouteBuild(routes, compiled, previous.entries, previous.scoped, False)
    scoped = previous.scoped + _scoped(added) - _scoped(removed)
    fresh = sum(1 for c in added if c is not None)
    if positions is not None and len(previous.entries) == len(compiled) and fresh == len(added):
        entries = previous.entries.copy()  # every route served, before and after: same places
        for i in positions:
            item = compiled[i]
            assert item is not None
            entries[i] = (item.route, item)
    else:
        entries = [(c.route, c) for c in compiled if c is not None]
    return RouteBuild(routes, compiled, entries, scoped, True, fresh)


def _rebuild(
    routes: tuple[snapshot.Route, ...],
    services: Mapping[str, CompiledService],
    chains: Mapping[str, RouteChains],
    previous: RouteBuild,
) -> RouteBuild:
    by_id = {c.route.id: c for c in previous.compiled if c is not None}
    compiled: list[CompiledRoute | None] = []
    fresh = 0
    for route in routes:
        kept = by_id.get(route.id)
        service = services.get(route.service) if route.service else None
        if (
            kept is not None
            and (service is None or service.service.enabled)
            and kept.service is service
            and kept.plugin_chains is chains.get(route.id)
            and (kept.route is route or kept.route == route)
        ):
            if route.backends:  # the services it splits to may be new objects
                compile_route_fields(kept.route, kept, services)
            compiled.append(kept)
        else:
            compiled.append(_compile(route, services, chains))
            fresh += 1
    entries = [(c.route, c) for c in compiled if c is not None]
    same = len(entries) == len(previous.entries) and all(
        a[1] is b[1] for a, b in zip(entries, previous.entries, strict=True)
    )
    return RouteBuild(routes, compiled, entries, _scoped(compiled), not same, fresh)


def _compile(
    route: snapshot.Route,
    services: Mapping[str, CompiledService],
    chains: Mapping[str, RouteChains],
) -> CompiledRoute | None:
    service = services.get(route.service) if route.service else None
    if service is not None and not service.service.enabled:
        return None
    protocols = set(route.protocols)
    compiled = CompiledRoute(
        route=route,
        service=service,
        https_only="http" not in protocols and "https" in protocols,
        http_only="https" not in protocols and "http" in protocols,
        plugin_chains=chains.get(route.id),
    )
    compile_route_fields(route, compiled, services)
    return compiled


def _scoped(compiled: Sequence[CompiledRoute | None]) -> int:
    return sum(1 for c in compiled if c is not None and c.route.listeners)
