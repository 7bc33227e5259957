"""Worker processes take snapshot deltas: after the first (whole) snapshot every change goes
as a delta, each worker acknowledges the new version and serves the change."""

from __future__ import annotations

import asyncio
import http.client

from live_kit import as_entities, base_docs

from meshgate.agent.supervisor import NodeOptions, WorkerPool
from meshgate.compiler import NodeSettings
from meshgate.compiler.gateway import GatewayCompiler
from meshgate.proxy.http.settings import ProxySettings
from meshgate.resources.entity_set import EntitySet
from testkit import EchoUpstreams, free_port


def _status(port: int, host: str, path: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path, headers={"Host": host})
        return connection.getresponse().status
    finally:
        connection.close()


async def _scenario(upstream_port: int) -> None:
    port = free_port()
    node = NodeSettings.from_proxy_listen(f"127.0.0.1:{port}")
    docs = base_docs()
    for key, doc in list(docs.items()):
        if key[0] == "services" and doc["name"] == "alpha":
            docs[key] = {**doc, "port": upstream_port}
    entities, compiler = EntitySet(), GatewayCompiler()
    pool = WorkerPool(NodeOptions(settings=ProxySettings(), access_log=False), 2)
    await pool.start(compiler.compile(entities.replace(as_entities(docs)), node))
    try:
        route_key = next(k for k, d in docs.items() if k[0] == "routes" and d["name"] == "r1")
        for step in range(3):
            doc = {**docs[route_key], "paths": [f"/moved{step}"]}
            docs[route_key] = doc
            snap = compiler.compile(entities.apply({route_key: doc}), node)
            await pool.apply(snap)
            assert pool.versions() == [snap.version, snap.version]
        assert pool.full_pushes() == [1, 1]  # only the first snapshot went whole
        statuses = {await asyncio.to_thread(_status, port, "h1.test", "/moved2") for _ in range(8)}
        assert statuses == {200}
        assert await asyncio.to_thread(_status, port, "h1.test", "/r1") == 404
    finally:
        await pool.stop()


def test_workers_follow_changes_by_delta(echo_upstreams: EchoUpstreams) -> None:
    asyncio.run(_scenario(echo_upstreams.ports[0]))
