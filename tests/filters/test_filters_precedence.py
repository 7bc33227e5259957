"""Kong's scoping: one instance per plugin name, the most specific one; consumer scopes
resolved after authentication; disabled and protocol-filtered instances."""

from __future__ import annotations

import pytest
from filters_kit import Auth, compile_chain, recorder, registry, run_access

from meshgate.snapshot import PluginInstance

P = recorder("p", 500)
REG = registry(P, Auth)

# Kong's lookup order, most specific first: (route, service, consumer)
SCOPES = [
    ("rsc", "r", "s", "c1"),
    ("rc", "r", None, "c1"),
    ("sc", None, "s", "c1"),
    ("rs", "r", "s", None),
    ("c", None, None, "c1"),
    ("r", "r", None, None),
    ("s", None, "s", None),
    ("g", None, None, None),
]


def instance(
    ident: str, route: str | None, service: str | None, consumer: str | None, **kw: object
) -> PluginInstance:
    return PluginInstance(id=ident, name="p", route=route, service=service, consumer=consumer, **kw)  # type: ignore[arg-type]


AUTH = PluginInstance(id="auth", name="auth")


@pytest.mark.parametrize("drop", range(len(SCOPES)))
def test_with_consumer_the_most_specific_remaining_scope_wins(drop: int) -> None:
    """With the instances of scopes[drop:] configured, scopes[drop] is chosen."""
    plugins = [AUTH, *(instance(*scope) for scope in SCOPES[drop:])]
    chain = compile_chain(plugins, REG)
    ran = run_access(chain, consumer="c1")
    assert ran == [("p", SCOPES[drop][0])]


@pytest.mark.parametrize("drop", range(len(SCOPES)))
def test_without_consumer_consumer_scopes_never_apply(drop: int) -> None:
    plugins = [AUTH, *(instance(*scope) for scope in SCOPES[drop:])]
    chain = compile_chain(plugins, REG)
    expected = next((s[0] for s in SCOPES[drop:] if s[3] is None), None)
    ran = run_access(chain, consumer=None)
    assert ran == ([("p", expected)] if expected else [])


def test_another_consumer_gets_the_non_consumer_instance() -> None:
    plugins = [AUTH, *(instance(*scope) for scope in SCOPES)]
    assert run_access(compile_chain(plugins, REG), consumer="c2") == [("p", "rs")]


def test_route_and_service_scopes_of_other_entities_do_not_apply() -> None:
    plugins = [
        AUTH,
        instance("other-route", "r-other", None, None),
        instance("other-service", None, "s-other", None),
        instance("other-route-consumer", "r-other", None, "c1"),
    ]
    assert (
        compile_chain(plugins, REG) is None or run_access(compile_chain(plugins, REG), "c1") == []
    )
    assert run_access(compile_chain(plugins, REG, route="r-other"), "c1") == [
        ("p", "other-route-consumer")
    ]


def test_consumer_scope_applies_only_to_plugins_after_authentication() -> None:
    early = recorder("early", 2000)  # runs before auth (PRIORITY 1000): consumer unknown yet
    late = recorder("late", 10)
    reg = registry(early, late, Auth)
    plugins = [
        AUTH,
        PluginInstance(id="early-global", name="early"),
        PluginInstance(id="early-c1", name="early", consumer="c1"),
        PluginInstance(id="late-global", name="late"),
        PluginInstance(id="late-c1", name="late", consumer="c1"),
    ]
    chain = compile_chain(plugins, reg)
    assert chain is not None
    assert chain.dynamic
    assert run_access(chain, "c1") == [("early", "early-global"), ("late", "late-c1")]
    assert run_access(chain, None) == [("early", "early-global"), ("late", "late-global")]


def test_consumer_only_plugin_runs_only_for_that_consumer() -> None:
    plugins = [AUTH, instance("only-c1", None, None, "c1")]
    chain = compile_chain(plugins, REG)
    assert run_access(chain, "c1") == [("p", "only-c1")]
    assert run_access(chain, "c2") == []
    assert run_access(chain, None) == []


def test_disabled_instance_lets_the_next_scope_win() -> None:
    plugins = [instance("r", "r", None, None, enabled=False), instance("g", None, None, None)]
    assert run_access(compile_chain(plugins, REG)) == [("p", "g")]


def test_protocols_filter_the_chosen_instance_per_scheme() -> None:
    plugins = [
        instance("r", "r", None, None, protocols=("https",)),
        instance("g", None, None, None),
    ]
    assert run_access(compile_chain(plugins, REG, scheme="https")) == [("p", "r")]
    # the route instance is the one chosen; it does not run on http (no fallback to global)
    assert run_access(compile_chain(plugins, REG, scheme="http")) == []


def test_no_plugins_means_no_chain() -> None:
    assert compile_chain([], REG) is None
    assert compile_chain([instance("o", "r-other", None, None)], REG) is None


def test_routes_with_the_same_plugins_share_one_chain() -> None:
    from meshgate.proxy.filters.chain import compile_plugins
    from meshgate.proxy.filters.env import SnapshotEnv
    from meshgate.snapshot import Route, Snapshot

    routes = tuple(Route(id=f"r{i}", paths=(f"/{i}",)) for i in range(5))
    snap = Snapshot(routes=routes, plugins=(PluginInstance(id="g", name="p"),))
    compiled = compile_plugins(snap, REG, SnapshotEnv(snap))
    assert len({id(compiled.chains[r.id][0]) for r in routes}) == 1
    assert len(compiled.handlers) == 1
