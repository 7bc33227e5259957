"""Build the router's ranked entries and index, from scratch or from the previous build.

A full build compiles every route (``router_entries``), sorts the entries by priority key and
ranks them ``_RANK_SPACING`` apart.  An incremental build starts from the previous
``RouteSet``: the input is compared with the previous input by identity (at C speed) to find
the window where they differ; only routes in that window are looked at.  A route whose
(route, target) pair is the same objects keeps its entries as they are (compiled matchers,
sort keys and ranks); an equal route with another target gets copies at the same ranks; any
other route is compiled and its entries ranked into the gaps between their neighbours.  The
index is updated copy-on-write (``HostIndex.updated``).  Nothing the previous build holds is
changed: it may keep serving lookups, in another thread, meanwhile.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import compress, count
from operator import attrgetter, is_not, or_
from typing import TYPE_CHECKING, Generic, TypeVar

from meshgate.proxy.router_entries import Entry, compile_entries
from meshgate.proxy.router_index import NO_RANK, HostIndex

if TYPE_CHECKING:
    from meshgate import snapshot

T = TypeVar("T")

# A full build ranks entries this far apart; an entry added later goes between its neighbours,
# at most ``_RANK_STEP`` after the one before it (so a run of additions in one place fits).
# When no gap is left, a full build renumbers (still reusing what was compiled).
_RANK_SPACING = 1 << 32
_RANK_STEP = 1 << 20
# More changed entries than a quarter of the router (and than 64): a full build is cheaper.
_INCREMENTAL_SHARE = 4
_INCREMENTAL_MIN = 64

_sort_key = attrgetter("sort_key")
_rank = attrgetter("rank")


# What a build made of one route: the route, its target and its entries (none: not an HTTP
# route).  A tuple, not a class: a full build makes one per route.
RouteEntries = tuple["snapshot.Route", T, list[Entry[T]]]


@dataclass(slots=True, frozen=True)
class RouteSet(Generic[T]):
    """One build: the entries in rank order, their index, and what the next build reuses."""

    entries: list[Entry[T]]
    index: HostIndex[T]
    ignored: list[snapshot.Route]  # routes with no HTTP protocol, in input order
    ignored_at: list[int]  # their positions in the input
    routes: list[snapshot.Route]  # the input, as given
    targets: list[T]
    by_route: dict[str, RouteEntries[T]] | None  # by route id; None: ids not unique
    header_entries: int  # entries that match on headers


def build_route_set(
    entries: Sequence[tuple[snapshot.Route, T]], previous: RouteSet[T] | None = None
) -> RouteSet[T]:
    """The build of ``entries``, from ``previous`` where that is cheaper."""
    if previous is not None and previous.by_route is not None and entries:
        built = _build_incrementally(entries, previous, previous.by_route)
        if built is not None:
            return built
    return _build_fully(entries, previous)


def _build_fully(
    entries: Sequence[tuple[snapshot.Route, T]], previous: RouteSet[T] | None
) -> RouteSet[T]:
    """Rank every entry anew; entries of equal routes of ``previous`` are copied, not
    compiled again (the copies get the new ranks: ``previous`` keeps its own)."""
    reusable = previous.by_route if previous is not None else None
    compiled: list[Entry[T]] = []
    ignored_at: list[int] = []
    by_route: dict[str, RouteEntries[T]] | None = {}
    for position, (route, target) in enumerate(entries):
        prior = reusable.get(route.id) if reusable is not None else None
        if prior is not None and (prior[0] is route or prior[0] == route):
            route_entries = [entry.clone(route, target, 0) for entry in prior[2]]
        else:
            route_entries = compile_entries(route, target)
        if by_route is not None:
            if route.id in by_route:
                by_route = None  # duplicate ids: a later build cannot tell routes apart
            else:
                by_route[route.id] = (route, target, route_entries)
        if route_entries:
            compiled.extend(route_entries)
        else:
            ignored_at.append(position)
    compiled.sort(key=_sort_key)
    for position, entry in enumerate(compiled):
        entry.rank = position * _RANK_SPACING
    routes = [route for route, _ in entries]
    return RouteSet(
        compiled,
        HostIndex(compiled),
        [routes[position] for position in ignored_at],
        ignored_at,
        routes,
        [target for _, target in entries],
        by_route,
        sum(1 for entry in compiled if entry.headers),
    )


def _build_incrementally(
    entries: Sequence[tuple[snapshot.Route, T]],
    previous: RouteSet[T],
    old: dict[str, RouteEntries[T]],
) -> RouteSet[T] | None:
    """``previous`` changed by what differs in ``entries``; None when a full build is the
    better (or the only) way: many changes, duplicate route ids, or no rank gap left."""
    routes = [route for route, _ in entries]
    targets = [target for _, target in entries]
    old_routes, old_targets = previous.routes, previous.targets
    new_count, old_count = len(routes), len(old_routes)
    shorter = min(new_count, old_count)
    head = _same_run(routes, old_routes, targets, old_targets, shorter)
    tail = min(
        shorter - head,  # the runs from both ends may not overlap
        _same_run(
            reversed(routes), reversed(old_routes), reversed(targets), reversed(old_targets),
            shorter - head,
        ),
    )  # fmt: skip
    new_end, old_end = new_count - tail, old_count - tail
    if head == new_end == old_end:
        return RouteSet(
            previous.entries, previous.index, previous.ignored, previous.ignored_at,
            routes, targets, old, previous.header_entries,
        )  # fmt: skip
    limit = max(_INCREMENTAL_MIN, len(previous.entries) // _INCREMENTAL_SHARE)
    window_ids = {route.id for route in old_routes[head:old_end]}
    by_route = dict(old)
    seen: set[str] = set()
    window_ignored: list[int] = []
    gone: list[Entry[T]] = []
    kept_ranks: list[Entry[T]] = []  # copies for an equal route with another target
    fresh: list[Entry[T]] = []  # compiled now, to be ranked
    for position in range(head, new_end):
        route, target = routes[position], targets[position]
        route_id = route.id
        if route_id in seen:
            return None  # duplicate route ids
        seen.add(route_id)
        prior = old.get(route_id)
        if prior is not None:
            if route_id not in window_ids:
                return None  # the id of a route outside the window: a duplicate
            prior_route, prior_target, prior_entries = prior
            if prior_route is route and prior_target is target:
                if not prior_entries:
                    window_ignored.append(position)
                continue
            gone.extend(prior_entries)
            if prior_route == route:
                copies = [entry.clone(route, target, entry.rank) for entry in prior_entries]
                by_route[route_id] = (route, target, copies)
                kept_ranks.extend(copies)
                if not copies:
                    window_ignored.append(position)
                continue
        route_entries = compile_entries(route, target)
        by_route[route_id] = (route, target, route_entries)
        fresh.extend(route_entries)
        if not route_entries:
            window_ignored.append(position)
        if len(gone) + len(fresh) > limit:
            return None
    for route_id in window_ids - seen:
        gone.extend(by_route.pop(route_id)[2])
    ranked = _ranked(previous.entries, gone, kept_ranks, fresh)
    if ranked is None:
        return None
    came = kept_ranks + fresh
    shift = new_count - old_count
    ignored_at = [p for p in previous.ignored_at if p < head] + window_ignored
    ignored_at += [p + shift for p in previous.ignored_at if p >= old_end]
    header_entries = previous.header_entries
    header_entries -= sum(1 for entry in gone if entry.headers)
    header_entries += sum(1 for entry in came if entry.headers)
    return RouteSet(
        ranked,
        previous.index.updated(gone, came),
        [routes[p] for p in ignored_at],
        ignored_at,
        routes,
        targets,
        by_route,
        header_entries,
    )


def _same_run(
    routes: Iterable[snapshot.Route],
    old_routes: Iterable[snapshot.Route],
    targets: Iterable[T],
    old_targets: Iterable[T],
    compared: int,
) -> int:
    """How many (route, target) pairs from the start are the same objects as before, out
    of the ``compared`` first (the shorter input's length); compared in C, not bytecode."""
    differs = map(or_, map(is_not, routes, old_routes), map(is_not, targets, old_targets))
    first = next(compress(count(), differs), None)
    return compared if first is None else first


def _ranked(
    entries: list[Entry[T]], gone: list[Entry[T]], kept_ranks: list[Entry[T]], fresh: list[Entry[T]]
) -> list[Entry[T]] | None:
    """``entries`` without ``gone``, with ``kept_ranks`` at their ranks and ``fresh`` ranked
    into the gaps by sort key; None when some gap is too narrow."""
    ranked = list(entries)
    for entry in gone:
        position = bisect_left(ranked, entry.rank, key=_rank)
        if position == len(ranked) or ranked[position] is not entry:
            return None  # not where its rank says: renumber rather than guess
        del ranked[position]
    for entry in kept_ranks:
        ranked.insert(bisect_left(ranked, entry.rank, key=_rank), entry)
    fresh.sort(key=_sort_key)
    for entry in fresh:
        position = bisect_left(ranked, entry.sort_key, key=_sort_key)
        before = ranked[position - 1].rank if position > 0 else None
        after = ranked[position].rank if position < len(ranked) else None
        if before is None:
            rank = 0 if after is None else after - _RANK_SPACING
        elif after is None:
            rank = before + _RANK_SPACING
        elif after - before >= 2:
            rank = before + min((after - before) // 2, _RANK_STEP)
        else:
            return None
        if abs(rank) >= NO_RANK:
            return None
        entry.rank = rank
        ranked.insert(position, entry)
    return ranked
