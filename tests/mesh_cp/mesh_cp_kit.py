"""Helpers of the mesh control-plane tests: an in-process CP, sidecar agents, HTTP calls."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from meshgate.agent.dataplane.client import AgentConfig, DataplaneAgent
from meshgate.agent.supervisor import InProcessProxy, NodeOptions
from meshgate.controlplane.admin_api import AdminServer, serve_admin
from meshgate.controlplane.ca import MeshCA, StoreCAStorage
from meshgate.controlplane.ca.manager import utc_now
from meshgate.controlplane.distribution import (
    DataplaneTokens,
    DistributionEngine,
    DistributionServer,
    ServerTLS,
    serve_distribution,
    server_tls,
)
from meshgate.controlplane.distribution.storage import ensure_mesh
from meshgate.controlplane.mesh_api import create_mesh_app
from meshgate.proxy.http.settings import ProxySettings
from meshgate.store import Store, open_store
from meshgate.tasks import spawn


@dataclass
class Clock:
    now: datetime.datetime = field(default_factory=utc_now)

    def __call__(self) -> datetime.datetime:
        return self.now


@dataclass
class ControlPlane:
    store: Store
    engine: DistributionEngine
    tokens: DataplaneTokens
    tls: ServerTLS
    dp_server: DistributionServer
    api: AdminServer
    clock: Clock
    client: httpx.AsyncClient

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api.port}"

    @property
    def dp_port(self) -> int:
        return self.dp_server.port

    async def stop(self) -> None:
        await self.client.aclose()
        await self.api.stop()
        await self.dp_server.stop()
        await self.engine.stop()


async def start_cp(
    store: Store,
    *,
    dp_port: int = 0,
    admin_token: str | None = None,
    clock: Clock | None = None,
    **engine_options: Any,
) -> ControlPlane:
    clock = clock or Clock()
    tokens = DataplaneTokens(store)
    engine_options.setdefault("rotation_check_interval", 3600)
    engine = DistributionEngine(
        store, ca=MeshCA(StoreCAStorage(store), clock=clock), tokens=tokens, clock=clock,
        **engine_options,
    )  # fmt: skip
    await engine.start()
    tls = await server_tls(store, now=clock())
    dp_server = await serve_distribution(engine, tls, "127.0.0.1", dp_port)
    api = await serve_admin(create_mesh_app(store, engine, tokens, admin_token=admin_token),
                            "127.0.0.1", 0)  # fmt: skip
    client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{api.port}", timeout=20)
    return ControlPlane(store, engine, tokens, tls, dp_server, api, clock, client)


@contextlib.asynccontextmanager
async def control_plane(tmp_path: Path, **kwargs: Any) -> AsyncIterator[ControlPlane]:
    store = await open_store(f"sqlite:///{tmp_path}/cp.db")
    await ensure_mesh(store, "default")
    cp = await start_cp(store, **kwargs)
    try:
        yield cp
    finally:
        await cp.stop()
        await store.close()


async def call(
    cp: ControlPlane, method: str, path: str, body: Any = None, **kwargs: Any
) -> httpx.Response:
    return await cp.client.request(method, path, json=body, **kwargs)


async def put_ok(cp: ControlPlane, path: str, body: Any) -> None:
    response = await call(cp, "PUT", path, body)
    assert response.status_code in (200, 201), response.text


def dataplane_doc(
    name: str,
    inbounds: list[tuple[str, int, int]] = (),  # type: ignore[assignment]
    outbounds: list[tuple[str, int]] = (),  # type: ignore[assignment]
    mesh: str = "default",
) -> dict[str, Any]:
    """(service, sidecar port, app port) inbounds; (service, port) outbounds; all HTTP."""
    return {
        "type": "Dataplane",
        "name": name,
        "mesh": mesh,
        "networking": {
            "address": "127.0.0.1",
            "inbound": [
                {
                    "port": port,
                    "servicePort": app,
                    "tags": {"kuma.io/service": svc, "kuma.io/protocol": "http"},
                }
                for svc, port, app in inbounds
            ],
            "outbound": [
                {"port": port, "tags": {"kuma.io/service": svc}} for svc, port in outbounds
            ],
        },
    }


@dataclass
class Sidecar:
    agent: DataplaneAgent
    proxy: InProcessProxy
    stop_event: asyncio.Event
    task: asyncio.Task[None]

    async def wait_version(
        self, predicate: Callable[[str | None], bool], timeout: float = 10
    ) -> str:
        async def reached() -> str:
            async with self.agent.applied:
                await self.agent.applied.wait_for(lambda: predicate(self._version()))
            version = self._version()
            assert version is not None
            return version

        return await asyncio.wait_for(reached(), timeout)

    def _version(self) -> str | None:
        return self.agent.running.version if self.agent.running else None

    async def stop(self) -> None:
        self.stop_event.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.task, 10)
        if self.agent.running is not None:
            await self.proxy.stop()


async def start_sidecar(
    cp_port: int, token: str, doc: dict[str, Any], state_dir: Path, **extra: Any
) -> Sidecar:
    token_file = state_dir.with_name(state_dir.name + ".token")
    token_file.write_text(token)
    config = AgentConfig(
        cp_host="127.0.0.1", cp_port=cp_port, token_file=token_file, dataplane=doc,
        state_dir=state_dir, backoff_initial=0.05, backoff_max=0.3, **extra,
    )  # fmt: skip
    proxy = InProcessProxy(NodeOptions(settings=ProxySettings(), access_log=False))
    agent = DataplaneAgent(config, proxy)
    stop = asyncio.Event()
    task = spawn(agent.run(stop), name=f"sidecar-{doc['name']}")
    return Sidecar(agent, proxy, stop, task)


async def http_get(port: int, path: str = "/") -> tuple[int, dict[str, Any] | str]:
    """One request on a fresh connection (raw HTTP/1.1, no client library set-up cost)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n".encode())
        raw = await asyncio.wait_for(reader.read(-1), 10)
    finally:
        writer.close()
    if not raw.startswith(b"HTTP/1.1 "):
        raise ConnectionResetError(f"no HTTP response: {raw[:40]!r}")
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body.decode(errors="replace")


async def eventually(check: Callable[[], Any], timeout: float = 10, interval: float = 0.05) -> Any:
    """Await ``check()`` until it returns something truthy (and return it)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last: {result!r})")
        await asyncio.sleep(interval)
