"""Node information: ``GET /`` (what decK reads the Kong version from), ``GET /status``,
``GET /plugins/enabled`` and the list of plugins this node knows.

``AVAILABLE_PLUGINS`` are the plugins the node's plugin registry enables (bundled ones plus
third-party entry points named in its ``plugins`` setting), with their priorities.
"""

from __future__ import annotations

import hashlib
import json
import socket
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import meshgate
from meshgate.proxy.filters.registry import default_registry
from meshgate.store import Store

KONG_COMPAT_VERSION = "3.9.3"
"""The Kong version meshgate's Admin API answers for (decK gates features on it)."""


class _EnabledPlugins(Mapping[str, int]):
    """Plugin name -> PRIORITY for the node's registry, read when asked (the ``plugins``
    setting is applied at start, after this module is imported)."""

    def _current(self) -> dict[str, int]:
        registry = default_registry()
        return {name: registry.get(name).priority for name in registry.names()}

    def __getitem__(self, name: str) -> int:
        return self._current()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._current())

    def __len__(self) -> int:
        return len(self._current())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in default_registry().names()


AVAILABLE_PLUGINS: Mapping[str, int] = _EnabledPlugins()
"""Plugins this node runs (its ``plugins`` setting), by name, with their PRIORITY."""
"""Plugin name → priority (higher runs first), Kong 3.9 values."""

EMPTY_CONFIG_HASH = "0" * 32


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """Who this node is, as ``GET /`` reports it."""

    node_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    hostname: str = field(default_factory=socket.gethostname)
    version: str = KONG_COMPAT_VERSION
    # "sqlite", "postgres" or "off"; None: "off" on a read-only node, else the store's dialect
    database: str | None = None
    admin_listen: tuple[str, ...] = ("127.0.0.1:8001",)
    proxy_listen: tuple[str, ...] = ("0.0.0.0:8000",)


def root_info(node: NodeInfo, database: str, enabled_plugins: list[str]) -> dict[str, Any]:
    plugins_available = {
        name: {"version": KONG_COMPAT_VERSION, "priority": priority}
        for name, priority in sorted(AVAILABLE_PLUGINS.items())
    }
    return {
        "version": node.version,
        "edition": "community",
        "meshgate_version": meshgate.__version__,
        "tagline": "Welcome to meshgate",
        "node_id": node.node_id,
        "hostname": node.hostname,
        "lua_version": None,
        "pids": {"master": None, "workers": []},
        "timers": {"running": 0, "pending": 0},
        "plugins": {
            "available_on_server": plugins_available,
            "enabled_in_cluster": enabled_plugins,
        },
        "configuration": {
            "database": database,
            "admin_listen": list(node.admin_listen),
            "proxy_listen": list(node.proxy_listen),
            "plugins": ["bundled"],
            "loaded_plugins": {name: True for name in sorted(AVAILABLE_PLUGINS)},
            "router_flavor": "traditional_compatible",
            "role": "traditional",
        },
    }


async def enabled_plugins(store: Store) -> list[str]:
    """Names of the plugins configured anywhere (``plugins.enabled_in_cluster``)."""
    names: set[str] = set()
    offset: str | None = None
    while True:
        page = await store.list("plugins", size=1000, offset=offset)
        names.update(str(doc.get("name")) for doc in page.data)
        if page.next_offset is None:
            return sorted(names)
        offset = page.next_offset


def entities_hash(entities: Iterable[tuple[str, Mapping[str, Any]]]) -> str:
    """MD5 of entity documents in canonical JSON, order-independent; zeros when empty (Kong)."""
    ordered = sorted(entities, key=lambda item: (item[0], str(item[1].get("id"))))
    if not ordered:
        return EMPTY_CONFIG_HASH
    digest = hashlib.md5(usedforsecurity=False)
    for entity_type, doc in ordered:
        digest.update(json.dumps([entity_type, doc], sort_keys=True).encode())
    return digest.hexdigest()


class ConfigHasher:
    """``configuration_hash`` of ``/status``: the hash of every stored entity, recomputed only
    when the store's revision moved."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._last: tuple[int, str] | None = None

    async def current(self) -> tuple[int, str]:
        """(revision, hash)."""
        if self._last is not None and self._last[0] == await self.store.revision():
            return self._last
        dump = await self.store.dump_all()
        digest = entities_hash((entity.type, entity.doc) for entity in dump.entities)
        self._last = (dump.revision, digest)
        return self._last


async def status_info(hasher: ConfigHasher, counters: dict[str, int]) -> dict[str, Any]:
    try:
        revision, config_hash = await hasher.current()
        reachable = True
    except Exception:  # the status endpoint reports a broken database, it does not fail
        revision, config_hash, reachable = -1, EMPTY_CONFIG_HASH, False
    return {
        "database": {"reachable": reachable},
        "server": dict(counters),
        "configuration_hash": config_hash,
        "revision": revision,
        "memory": {"workers_lua_vms": [], "lua_shared_dicts": {}},
    }
