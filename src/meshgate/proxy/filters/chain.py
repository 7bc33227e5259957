"""Plugin chains, compiled once per snapshot: which plugin instances run on a route, in what
order, in which phase.

Scoping (Kong's ``lookup_cfg``): per request one instance per plugin name, the most specific
one, in this order:
    route+service+consumer > route+consumer > service+consumer > route+service
    > consumer > route > service > global.
Disabled instances are left out before choosing (a disabled route instance lets the global
one run, as in Kong); the chosen instance runs only when its ``protocols`` has the request's
scheme (``http``/``https``).

The consumer is only known after authentication.  As in Kong's access-phase iterator, the
instance of each plugin is resolved *when the iteration reaches it*: plugins that come after
the auth plugin (lower PRIORITY, e.g. acl, rate-limiting) see the consumer and pick their
consumer-scoped instance; plugins before it use the non-consumer one.  The instance chosen
in access is the one whose response/body/log phases run.  Per route we precompute the
non-consumer instance of each plugin (``Slot.base``) and a map consumer id → instance for the
consumers that have consumer-scoped instances (``Slot.overrides``).

Order: PRIORITY (higher first; ties by name).  The access phase also honours per-instance
``ordering: {before: {access: [names]}, after: {access: [names]}}`` (Kong Enterprise's
dynamic ordering; only ``access``; ignored on consumer-scoped instances): a stable
topological sort of the priority order; a cycle is a config error.  Other phases keep
PRIORITY order.

``rewrite`` runs only for global instances, as in Kong (the route is known to us at that
point, but Kong users expect route-scoped plugins not to rewrite).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from meshgate.errors import ConfigError, Violation
from meshgate.proxy.filters.api import CompileEnv, PluginHandler
from meshgate.proxy.filters.handler_reuse import BuiltHandler, TrackedEnv, reusable
from meshgate.proxy.filters.registry import PluginRegistry

if TYPE_CHECKING:
    from meshgate.snapshot import PluginInstance, Snapshot

_Key = tuple[str | None, str | None, str | None]  # (route, service, consumer)


class Bound:
    """A built handler with its phase methods looked up once (None: phase not overridden)."""

    __slots__ = (
        "access",
        "body",
        "handler",
        "instance",
        "log",
        "name",
        "rank",
        "response",
        "rewrite",
    )

    def __init__(self, handler: PluginHandler, instance: PluginInstance) -> None:
        self.handler = handler
        self.instance = instance
        self.name = instance.name
        self.rank = (-type(handler).PRIORITY, instance.name)
        cls = type(handler)

        def bound(phase: str) -> Callable[..., Any] | None:
            if getattr(cls, phase) is getattr(PluginHandler, phase):
                return None
            method: Callable[..., Any] = getattr(handler, phase)
            return method

        self.rewrite = bound("rewrite")
        self.access = bound("access")
        self.response = bound("response")
        self.body = bound("body")
        self.log = bound("log")

    def __repr__(self) -> str:
        return f"Bound({self.name}#{self.instance.id})"


@dataclass(frozen=True, slots=True)
class Slot:
    """One plugin name on a route: its non-consumer instance and consumer overrides."""

    name: str
    base: Bound | None
    overrides: dict[str, Bound | None] | None = None


@dataclass(slots=True, eq=False)
class Chain:
    """What runs on a route for one scheme."""

    rewrite: tuple[Bound, ...]
    slots: tuple[Slot, ...]  # access order
    access: tuple[Bound, ...]  # static chains: the base handlers with access, access order
    response: tuple[Bound, ...]  # static chains: priority order
    body: tuple[Bound, ...]
    log: tuple[Bound, ...]
    dynamic: bool  # some slot has consumer overrides
    needs_body: bool
    body_limit: int
    names: tuple[str, ...] = field(default=())

    def after_access(self, collected: list[Bound]) -> tuple[list[Bound], list[Bound], list[Bound]]:
        """Response/body/log handlers of a dynamic chain, from the instances access chose."""
        ordered = sorted(collected, key=lambda b: b.rank)
        return (
            [b for b in ordered if b.response],
            [b for b in ordered if b.body],
            [b for b in ordered if b.log],
        )


RouteChains = tuple[Chain | None, Chain | None]  # (http, https)


@dataclass(slots=True)
class CompiledPlugins:
    """A snapshot's plugins: per-route chains and every handler built (to start/stop)."""

    chains: dict[str, RouteChains] = field(default_factory=dict)
    handlers: list[PluginHandler] = field(default_factory=list)
    built: dict[str, BuiltHandler] = field(default_factory=dict)  # by instance id, for reuse
    # chains by the handlers they run (the objects: a key lives as long as its handlers)
    chain_memo: dict[tuple[Any, ...], Chain] = field(default_factory=dict)


def _search_order(route: str | None, service: str | None, consumer: str | None) -> list[_Key]:
    keys: list[_Key] = []
    if consumer is not None:
        keys += [(route, service, consumer), (route, None, consumer), (None, service, consumer)]
    keys.append((route, service, None))
    if consumer is not None:
        keys.append((None, None, consumer))
    keys += [(route, None, None), (None, service, None), (None, None, None)]
    return keys


def build_handlers(
    snap: Snapshot,
    registry: PluginRegistry,
    env: CompileEnv,
    previous: Mapping[str, BuiltHandler] | None = None,
    built: dict[str, BuiltHandler] | None = None,
) -> tuple[dict[str, Bound], list[Violation]]:
    """A ``Bound`` handler per enabled instance; every config problem as a violation.
    A handler of ``previous`` is kept when nothing it was built from changed
    (``handler_reuse``); ``built`` collects what this build made or kept."""
    bound: dict[str, Bound] = {}
    problems: list[Violation] = []
    consumers = snap.consumers
    for inst in snap.plugins:
        if not inst.enabled:
            continue
        old = previous.get(inst.id) if previous is not None else None
        if old is not None and reusable(old, inst, consumers):
            bound[inst.id] = old.bound
            if built is not None:
                built[inst.id] = old
            continue
        where = f"plugins.{inst.instance_name or inst.id}"
        try:
            spec = registry.get(inst.name)
            config = registry.compile_config(inst.name, inst.config)
            _check_ordering(inst)
            tracked = TrackedEnv(env)
            bound[inst.id] = made = Bound(spec.handler(config, inst, tracked), inst)
            if built is not None:
                built[inst.id] = BuiltHandler(inst, made, tracked, consumers)
        except ConfigError as error:
            problems += [Violation(f"{where}.{v.path}", v.message) for v in error.violations]
        except Exception as error:  # a plugin whose constructor fails is a config problem
            problems.append(Violation(where, f"plugin '{inst.name}' failed to start: {error}"))
    return bound, problems


def _check_ordering(inst: PluginInstance) -> None:
    problems = []
    for direction, phases in (inst.ordering or {}).items():
        if direction not in ("before", "after"):
            problems.append(Violation(f"ordering.{direction}", "expected 'before' or 'after'"))
            continue
        for phase in phases:
            if phase != "access":
                problems.append(
                    Violation(f"ordering.{direction}.{phase}", "only 'access' can be ordered")
                )
    if problems:
        raise ConfigError(problems)


def compile_plugins(
    snap: Snapshot,
    registry: PluginRegistry,
    env: CompileEnv,
    previous: CompiledPlugins | None = None,
) -> CompiledPlugins:
    """Every route's chains; ``ConfigError`` lists every bad plugin (nothing is half-built).
    ``previous``: the plugins of the running snapshot, whose unchanged handlers are kept."""
    built: dict[str, BuiltHandler] = {}
    bound, problems = build_handlers(
        snap, registry, env, previous.built if previous is not None else None, built
    )
    scopes: dict[str, dict[_Key, Bound]] = {}
    consumers_of: dict[str, list[str]] = {}
    for inst in snap.plugins:
        b = bound.get(inst.id)
        if b is None:
            continue
        key = (inst.route, inst.service, inst.consumer)
        by_key = scopes.setdefault(inst.name, {})
        if key in by_key:
            problems.append(Violation(f"plugins.{inst.id}", f"duplicate '{inst.name}' scope"))
            continue
        by_key[key] = b
        if inst.consumer is not None:
            consumers_of.setdefault(inst.name, []).append(inst.consumer)
    if problems:
        raise ConfigError(problems)
    for kept in built.values():
        kept.env.target = env  # kept handlers now read the snapshot they will serve
    result = CompiledPlugins(handlers=[b.handler for b in bound.values()], built=built)
    if not bound:
        return result
    memo = result.chain_memo
    known = previous.chain_memo if previous is not None else {}
    # the (http, https) pairs too, so that an unchanged route gets the very same object (typed
    # Any: compiled, a value typed as a tuple is unboxed and boxed again as a new object, and
    # every unchanged route would look changed to the router build, which compares by identity)
    chains: dict[str, Any] = result.chains
    pairs: dict[Any, Any] = {}
    if previous is not None:
        old_chains: dict[str, Any] = previous.chains
        pairs.update((pair, pair) for pair in old_chains.values())
    for route in snap.routes:
        slots = _route_slots(route.id, route.service, scopes, consumers_of)
        if not slots:
            continue
        pair: Any = (
            _chain_for(slots, "http", memo, known),
            _chain_for(slots, "https", memo, known),
        )
        chains[route.id] = pairs.setdefault(pair, pair)
    return result


def _route_slots(
    route: str,
    service: str | None,
    scopes: dict[str, dict[_Key, Bound]],
    consumers_of: dict[str, list[str]],
) -> list[Slot]:
    slots = []
    base_keys = _search_order(route, service, None)
    for name, by_key in scopes.items():
        base = next((by_key[k] for k in base_keys if k in by_key), None)
        overrides: dict[str, Bound | None] = {}
        for consumer in consumers_of.get(name, ()):
            keys = _search_order(route, service, consumer)
            best = next((by_key[k] for k in keys if k in by_key), None)
            if best is not base:
                overrides[consumer] = best
        if base is not None or overrides:
            slots.append(Slot(name, base, overrides or None))
    return slots


def _for_scheme(b: Bound | None, scheme: str) -> Bound | None:
    return b if b is not None and scheme in b.instance.protocols else None


def _chain_for(
    slots: list[Slot],
    scheme: str,
    memo: dict[tuple[Any, ...], Chain],
    known: Mapping[tuple[Any, ...], Chain],
) -> Chain | None:
    """The chain of ``slots`` for ``scheme``: one object per distinct set of handlers, the
    previous build's (``known``) when it ran the very same handlers."""
    kept: list[Slot] = []
    for slot in slots:
        base = _for_scheme(slot.base, scheme)
        overrides = None
        if slot.overrides:
            overrides = {c: _for_scheme(b, scheme) for c, b in slot.overrides.items()}
        if base is not None or overrides:
            kept.append(Slot(slot.name, base, overrides))
    if not kept:
        return None
    key = tuple((s.name, s.base, _overrides_key(s.overrides) if s.overrides else ()) for s in kept)
    chain = memo.get(key)
    if chain is None:
        chain = memo[key] = known.get(key) or _make_chain(kept)
    return chain


def _overrides_key(overrides: dict[str, Bound | None]) -> tuple[tuple[str, Bound | None], ...]:
    return tuple(sorted(overrides.items(), key=lambda item: item[0]))


def _make_chain(slots: list[Slot]) -> Chain:
    by_priority = sorted(slots, key=lambda s: _slot_rank(s))
    ordered = order_slots(by_priority)
    bases = [s.base for s in by_priority if s.base is not None]
    every: list[Bound] = list(bases)
    for slot in slots:
        every += [b for b in (slot.overrides or {}).values() if b is not None]
    return Chain(
        rewrite=tuple(b for b in bases if b.rewrite and _is_global(b.instance)),
        slots=tuple(ordered),
        access=tuple(s.base for s in ordered if s.base is not None and s.base.access),
        response=tuple(b for b in bases if b.response),
        body=tuple(b for b in bases if b.body),
        log=tuple(b for b in bases if b.log),
        dynamic=any(s.overrides for s in slots),
        needs_body=any(b.handler.needs_body for b in every),
        body_limit=max((b.handler.body_limit for b in every if b.handler.needs_body), default=0),
        names=tuple(s.name for s in ordered),
    )


def _is_global(inst: PluginInstance) -> bool:
    return inst.route is None and inst.service is None and inst.consumer is None


def _slot_rank(slot: Slot) -> tuple[int, str]:
    b = slot.base or next(b for b in (slot.overrides or {}).values() if b is not None)
    return b.rank


def order_slots(slots: list[Slot]) -> list[Slot]:
    """``slots`` (in priority order) re-ordered by their base instances' ``ordering``:
    a stable topological sort; ``ConfigError`` on a cycle."""
    index = {s.name: i for i, s in enumerate(slots)}
    edges: dict[int, set[int]] = {i: set() for i in range(len(slots))}
    has_ordering = False
    for i, slot in enumerate(slots):
        ordering = slot.base.instance.ordering if slot.base is not None else None
        if not ordering:
            continue
        for other in ordering.get("before", {}).get("access", ()):
            if other in index and index[other] != i:
                edges[i].add(index[other])
                has_ordering = True
        for other in ordering.get("after", {}).get("access", ()):
            if other in index and index[other] != i:
                edges[index[other]].add(i)
                has_ordering = True
    if not has_ordering:
        return slots
    return [slots[i] for i in _toposort(edges, slots)]


def _toposort(edges: dict[int, set[int]], slots: list[Slot]) -> list[int]:
    """Priority order, each plugin pulled forward just enough to follow what must precede
    it (a plugin ordered before another moves up to just before it)."""
    before: dict[int, list[int]] = {i: [] for i in edges}  # node -> nodes that must precede
    for i, targets in edges.items():
        for t in targets:
            before[t].append(i)
    out: list[int] = []
    state = dict.fromkeys(edges, 0)  # 0 new, 1 on the stack, 2 placed

    def place(i: int, trail: list[int]) -> None:
        if state[i] == 2:
            return
        if state[i] == 1:
            cycle = sorted({slots[j].name for j in trail[trail.index(i) :]})
            base = slots[i].base
            path = f"plugins.{base.instance.id}.ordering" if base is not None else "plugins"
            raise ConfigError([Violation(path, "ordering cycle among plugins " + ", ".join(cycle))])
        state[i] = 1
        for j in sorted(before[i]):
            place(j, [*trail, i])
        state[i] = 2
        out.append(i)

    for i in range(len(slots)):
        place(i, [])
    return out
