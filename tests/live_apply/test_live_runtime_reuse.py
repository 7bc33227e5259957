"""``build_config`` reuses what did not change: compiled routes, services, the router and
balancers (with their health state) survive an unrelated change; a changed route is rebuilt."""

from __future__ import annotations

from live_kit import ChangeMaker, as_entities, base_docs

from meshgate.compiler import NodeSettings
from meshgate.compiler.gateway import GatewayCompiler
from meshgate.proxy.compiled import CompiledConfig, CompiledRoute
from meshgate.proxy.runtime import BuildCache, build_config
from meshgate.proxy.tls.upstream import UpstreamTLS
from meshgate.resources.entity_set import EntitySet

NODE = NodeSettings.from_proxy_listen("127.0.0.1:8000")


def _route_target(config: CompiledConfig, host: str, path: str) -> CompiledRoute:
    match = config.router.match("GET", host, path)
    assert match is not None
    return match.target


def test_unchanged_routes_services_and_router_are_reused() -> None:
    maker = ChangeMaker(base_docs(), 5)
    entities = EntitySet()
    compiler = GatewayCompiler()
    tls, cache = UpstreamTLS(), BuildCache()
    # no plugins: chains are rebuilt per snapshot, which would defeat route reuse
    for key in [k for k in maker.docs if k[0] == "plugins"]:
        maker.docs.pop(key)
    first, _ = build_config(
        compiler.compile(entities.replace(as_entities(maker.docs)), NODE), None, tls, cache=cache
    )
    r0 = _route_target(first, "h0.test", "/r0")
    r1 = _route_target(first, "h1.test", "/r1")

    # an upstream change: routes, router and the other services stay
    upstream_key = next(k for k in maker.docs if k[0] == "upstreams")
    delta = {upstream_key: {**maker.docs[upstream_key], "slots": 123}}
    second, created = build_config(
        compiler.compile(entities.apply(delta), NODE), first, tls, cache=cache
    )
    maker.commit(delta)
    assert _route_target(second, "h0.test", "/r0") is r0
    assert second.router is first.router
    assert second.services[r0.route.service or ""] is first.services[r0.route.service or ""]
    assert [b.cluster.name for b in created] == ["upstream:pool"]

    # one route's paths change: it is rebuilt, the others are the same objects
    route_key = ("routes", r1.route.id)
    delta = {route_key: {**maker.docs[route_key], "paths": ["/moved"]}}
    third, created = build_config(
        compiler.compile(entities.apply(delta), NODE), second, tls, cache=cache
    )
    assert created == []
    assert _route_target(third, "h0.test", "/r0") is r0
    moved = _route_target(third, "h1.test", "/moved")
    assert moved is not r1
    assert moved.route.paths == ("/moved",)
    assert third.router is not second.router
    assert third.router.match("GET", "h1.test", "/r1") is None


def test_balancer_health_survives_an_unrelated_change() -> None:
    maker = ChangeMaker(base_docs(), 6)
    entities = EntitySet()
    compiler = GatewayCompiler()
    tls, cache = UpstreamTLS(), BuildCache()
    first, _ = build_config(
        compiler.compile(entities.replace(as_entities(maker.docs)), NODE), None, tls, cache=cache
    )
    pool = first.balancers["upstream:pool"]
    assert pool.set_health("127.0.0.1", 9101, False) == 1
    route_key = next(k for k in maker.docs if k[0] == "routes")
    delta = {route_key: {**maker.docs[route_key], "paths": ["/elsewhere"]}}
    second, created = build_config(
        compiler.compile(entities.apply(delta), NODE), first, tls, cache=cache
    )
    assert created == []
    assert second.balancers["upstream:pool"] is pool
    health = {(t["port"], t["health"]) for t in pool.health_report()}
    assert (9101, "UNHEALTHY") in health


def test_a_cache_of_a_config_never_applied_is_ignored() -> None:
    entities = EntitySet()
    compiler = GatewayCompiler()
    tls, cache = UpstreamTLS(), BuildCache()
    snap = compiler.compile(entities.replace(as_entities(base_docs())), NODE)
    first, _ = build_config(snap, None, tls, cache=cache)
    build_config(snap, first, tls, cache=cache)  # built, then (say) refused: never applied
    again, _ = build_config(snap, first, tls, cache=cache)
    assert again.router is not first.router  # rebuilt: the cache described another build


def test_plugin_handlers_and_chains_survive_a_route_edit() -> None:
    maker = ChangeMaker(base_docs(), 7)  # has a global correlation-id plugin
    entities = EntitySet()
    compiler = GatewayCompiler()
    tls, cache = UpstreamTLS(), BuildCache()
    first, _ = build_config(
        compiler.compile(entities.replace(as_entities(maker.docs)), NODE), None, tls, cache=cache
    )
    assert len(first.plugin_handlers) == 1
    r0 = _route_target(first, "h0.test", "/r0")
    assert r0.plugin_chains is not None
    r1 = _route_target(first, "h1.test", "/r1")
    route_key = ("routes", r1.route.id)
    delta = {route_key: {**maker.docs[route_key], "paths": ["/moved"]}}
    second, _ = build_config(compiler.compile(entities.apply(delta), NODE), first, tls, cache=cache)
    maker.commit(delta)
    assert second.plugin_handlers[0] is first.plugin_handlers[0]
    assert _route_target(second, "h0.test", "/r0") is r0

    plugin_key = next(k for k in maker.docs if k[0] == "plugins")
    delta = {plugin_key: {**maker.docs[plugin_key], "config": {"header_name": "x-trace"}}}
    third, _ = build_config(compiler.compile(entities.apply(delta), NODE), second, tls, cache=cache)
    assert third.plugin_handlers[0] is not first.plugin_handlers[0]
    assert _route_target(third, "h0.test", "/r0") is not r0
