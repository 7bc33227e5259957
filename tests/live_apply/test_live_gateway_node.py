"""``GatewayNode`` follows the store by deltas: each revision's changed entities are fetched
and applied incrementally, the result equals a full recompile, an invalid change is refused
with its field path (the running snapshot stays), and a pruned feed falls back to a full read."""

from __future__ import annotations

import asyncio
from typing import Any

from meshgate import snapshot
from meshgate.compiler import NodeSettings, compile_gateway
from meshgate.controlplane.admin_api.config_api import apply_declarative
from meshgate.controlplane.gateway_node import GatewayNode
from meshgate.resources.from_entities import config_from_entities
from meshgate.store import RevisionGone, Store, open_store
from testkit import RecordingProxy

NODE = NodeSettings.from_proxy_listen("127.0.0.1:8000")
DOCUMENT = {
    "_format_version": "3.0",
    "services": [
        {
            "name": "svc",
            "url": "http://127.0.0.1:9001",
            "routes": [{"name": f"r{i}", "paths": [f"/r{i}"]} for i in range(20)],
        }
    ],
}


async def _expected(store: Store) -> snapshot.Snapshot:
    dump = await store.dump_all()
    return compile_gateway(config_from_entities(dump.entities), NODE)


async def _route(store: Store, name: str) -> dict[str, Any]:
    doc = await store.get_by_key("routes", "name", name)
    assert doc is not None
    return doc


async def _scenario(url: str) -> None:
    store = await open_store(url)
    try:
        await apply_declarative(store, DOCUMENT)
        proxy = RecordingProxy()
        node = GatewayNode(store, NODE, proxy)
        await node.start()
        assert node.snapshot == await _expected(store)

        doc = await _route(store, "r3")
        await store.update(
            "routes", doc["id"], {**doc, "paths": ["/moved"]}, unique_keys=[("name", "r3")]
        )
        assert await node.sync()
        assert node.snapshot == await _expected(store)
        assert node.snapshot is not None
        assert node.snapshot.version == (await _expected(store)).version
        assert node._entities.fast_applies == 1  # one route revalidated, not the whole store

        before = node.snapshot
        doc = await _route(store, "r4")
        await store.update(
            "routes", doc["id"], {**doc, "paths": ["no-slash"]}, unique_keys=[("name", "r4")]
        )
        assert not await node.sync()
        assert node.last_error is not None
        assert f"routes[{doc['id']}].paths" in node.last_error
        assert node.snapshot is before
        assert proxy.applied[-1] is before

        await store.update(
            "routes", doc["id"], {**doc, "paths": ["/fixed"]}, unique_keys=[("name", "r4")]
        )
        assert await node.sync()
        assert node.snapshot == await _expected(store)

        async with store.transaction() as tx:  # a route and its new service in one revision
            service = await tx.insert(
                "services",
                {"id": "6f1c1f1e-0000-4000-8000-000000000001", "name": "svc2", "host": "10.0.0.2",
                 "port": 80, "protocol": "http", "created_at": 5, "updated_at": 5},
                unique_keys=[("name", "svc2")],
            )  # fmt: skip
            await tx.insert(
                "routes",
                {"id": "6f1c1f1e-0000-4000-8000-000000000002", "name": "n1", "paths": ["/n1"],
                 "service": {"id": service["id"]}, "created_at": 6, "updated_at": 6},
                unique_keys=[("name", "n1")],
            )  # fmt: skip
        assert await node.sync()
        assert node.snapshot == await _expected(store)

        original = store.changes_since

        async def pruned(revision: int) -> list[Any]:
            raise RevisionGone(revision, revision + 1)

        store.changes_since = pruned  # type: ignore[method-assign]
        await store.delete("routes", (await _route(store, "n1"))["id"])
        assert await node.sync()  # read whole instead
        assert node.snapshot == await _expected(store)
        store.changes_since = original  # type: ignore[method-assign]
        await node.stop()
    finally:
        await store.close()


def test_node_applies_store_changes_incrementally(live_store_url: str) -> None:
    asyncio.run(_scenario(live_store_url))
