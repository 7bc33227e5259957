"""Plugin handlers are kept across snapshots when nothing they were built from changed: a
change of one plugin rebuilds that plugin's handler only; a consumer change rebuilds the
handlers that read consumers (key-auth) and keeps the others; a refused snapshot leaves the
running handlers reading the running snapshot; key-auth sees a new key at once."""

from __future__ import annotations

from typing import Any

import pytest

from meshgate.compiler import NodeSettings, compile_gateway
from meshgate.errors import ConfigError
from meshgate.proxy.compiled import CompiledConfig
from meshgate.proxy.filters.api import Exit
from meshgate.proxy.filters.testing import FakeContext
from meshgate.proxy.runtime import BuildCache, build_config
from meshgate.proxy.tls.upstream import UpstreamTLS
from meshgate.resources.declarative import load_dict

NODE = NodeSettings.from_proxy_listen("127.0.0.1:8000")


def _document(*, limit: int = 100, keys: tuple[str, ...] = ("k1",)) -> dict[str, Any]:
    routes = [
        {"name": f"r{i}", "paths": [f"/r{i}"],
         "plugins": [{"name": "rate-limiting", "config": {"minute": limit if i == 0 else 100}}]}
        for i in range(5)
    ]  # fmt: skip
    routes.append({"name": "auth", "paths": ["/auth"], "plugins": [{"name": "key-auth"}]})
    return {
        "_format_version": "3.0",
        "services": [{"name": "s", "url": "http://127.0.0.1:9", "routes": routes}],
        "consumers": [{"username": "ann", "keyauth_credentials": [{"key": k} for k in keys]}],
    }


class Node:
    def __init__(self) -> None:
        self.tls, self.cache = UpstreamTLS(), BuildCache()
        self.config: CompiledConfig | None = None

    def apply(self, document: dict[str, Any]) -> CompiledConfig:
        snap = compile_gateway(load_dict(document), NODE)
        self.config, _ = build_config(snap, self.config, self.tls, cache=self.cache)
        return self.config


def _handlers(config: CompiledConfig) -> dict[str, Any]:
    assert config.snapshot is not None
    names = {p.id: f"{p.name}@{p.route}" for p in config.snapshot.plugins}
    plugins = config.snapshot.plugins
    return {names[p.id]: h for p, h in zip(plugins, config.plugin_handlers, strict=True)}


def _key_auth_accepts(config: CompiledConfig, key: str) -> bool:
    handler = next(h for h in config.plugin_handlers if h.name == "key-auth")
    ctx = FakeContext("GET", "/auth", headers={"apikey": key})
    try:
        handler.access(ctx)
    except Exit:
        return False
    return ctx.consumer is not None


def _route(config: CompiledConfig, path: str) -> Any:
    match = config.router.match("GET", "x.test", path)
    assert match is not None
    return match.target


def test_a_plugin_change_rebuilds_that_handler_only() -> None:
    node = Node()
    before = node.apply(_document())
    first = _handlers(before)
    after = node.apply(_document(limit=7))
    second = _handlers(after)
    changed = [name for name in first if first[name] is not second[name]]
    assert len(changed) == 1
    assert second[changed[0]].conf.minute == 7
    # the other routes keep their chains, hence their compiled routes (the router is
    # rebuilt from the running one for r0 alone)
    assert _route(after, "/r3") is _route(before, "/r3")
    assert _route(after, "/r0").plugin_chains is not _route(before, "/r0").plugin_chains


def test_a_consumer_change_rebuilds_the_handlers_that_read_consumers() -> None:
    node = Node()
    config = node.apply(_document())
    first = _handlers(config)
    assert _key_auth_accepts(config, "k1")
    assert not _key_auth_accepts(config, "k2")
    config = node.apply(_document(keys=("k1", "k2")))
    second = _handlers(config)
    rebuilt = {name.split("@")[0] for name in first if first[name] is not second[name]}
    assert rebuilt == {"key-auth"}
    assert _key_auth_accepts(config, "k2")


def test_a_refused_snapshot_leaves_running_handlers_on_the_running_snapshot() -> None:
    node = Node()
    config = node.apply(_document())
    running = config.snapshot
    bad = _document()
    bad["services"][0]["routes"][1]["plugins"][0]["config"] = {"minute": -1}
    with pytest.raises(ConfigError):
        node.apply(bad)
    plugins = node.cache.plugins
    assert plugins is not None
    assert all(b.env.target.snapshot is running for b in plugins.built.values())
