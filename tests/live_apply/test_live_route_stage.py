"""Incremental route compilation (``proxy.route_stage``) ≡ compiling from scratch.

Over seeded random change sequences (routes added, edited, removed; services edited,
disabled, removed; plugins added and removed …), the config built from the previous one with
its ``BuildCache`` serves exactly what a config built from nothing serves: the same entries
in the same order, the same service, protocol flags and plugin chains per route, and the
same router answers — both on the node (snapshot objects shared by the compiler) and on a
worker (snapshots patched from deltas)."""

from __future__ import annotations

from typing import Any

import pytest
from live_kit import ChangeMaker, as_entities, base_docs

from meshgate import snapshot
from meshgate.agent.snapshot_diff import diff, patch
from meshgate.compiler import NodeSettings
from meshgate.compiler.gateway import GatewayCompiler
from meshgate.errors import ConfigError
from meshgate.proxy.compiled import CompiledConfig, CompiledRoute
from meshgate.proxy.runtime import BuildCache, build_config
from meshgate.proxy.tls.upstream import UpstreamTLS
from meshgate.resources.entity_set import EntitySet

NODE = NodeSettings.from_proxy_listen("127.0.0.1:8000")
PROBES = [(host, f"/{p}{n}") for host in ("h0.test", "h1.test", "h2.test", "x.test")
          for p in ("r", "n", "p", "q") for n in (*range(12), 5, 77, 400)]  # fmt: skip


def _chain_names(route: CompiledRoute) -> Any:
    if route.plugin_chains is None:
        return None
    return tuple(None if chain is None else chain.names for chain in route.plugin_chains)


def _shape(config: CompiledConfig) -> list[Any]:
    entries = config.router._entries  # every entry the router ranks
    described = [
        (
            e.target.route.id,
            e.target.service.service.id if e.target.service else None,
            e.target.https_only,
            e.target.http_only,
            _chain_names(e.target),
        )
        for e in entries
    ]
    answers = []
    for host, path in PROBES:
        match = config.router.match("GET", host, path)
        answers.append(None if match is None else match.target.route.id)
    return [sorted(described, key=repr), answers]


@pytest.mark.parametrize("worker", [False, True], ids=["node", "worker"])
@pytest.mark.parametrize("seed", range(6))
def test_incremental_build_serves_what_a_fresh_build_serves(seed: int, worker: bool) -> None:
    maker = ChangeMaker(base_docs(), seed)
    entities = EntitySet()
    compiler = GatewayCompiler()
    tls, cache = UpstreamTLS(), BuildCache()
    running = compiler.compile(entities.replace(as_entities(maker.docs)), NODE)
    current = snapshot.Snapshot.from_json(running.to_json()) if worker else running
    config, _ = build_config(current, None, tls, cache=cache)
    applied = 0
    for _ in range(60):
        delta = maker.change()
        try:
            new = compiler.compile(entities.apply(delta), NODE)
        except ConfigError:
            continue
        maker.commit(delta)
        current = patch(current, diff(running, new)) if worker else new
        running = new
        fresh, _ = build_config(current, None, UpstreamTLS())
        config, _ = build_config(current, config, tls, cache=cache)
        assert _shape(config) == _shape(fresh)
        applied += 1
    assert applied > 20
