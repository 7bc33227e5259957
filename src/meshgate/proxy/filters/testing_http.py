"""Test kit for plugin authors, real HTTP: a gateway with plugins in front of an echo upstream.

    from meshgate.proxy.filters.testing_http import live_gateway, plugin, route

    snap_plugins = [plugin("key-auth", {"key_names": ["apikey"]}, route="r1")]
    with live_gateway(plugins=snap_plugins, consumers=[alice]) as gw:
        res = gw.request("GET", "/r1/orders", headers={"apikey": "secret"})
        assert res.status == 200
        assert res.json()["headers"]["x-consumer-id"] == alice.id   # what the upstream saw

The gateway (a ``ProxyRuntime``) and the echo upstream (``meshgate.demo.upstreams``; it
answers JSON ``{"method", "url", "headers", "body_bytes", ...}``) run in an event loop on a
background thread, so tests are plain functions using blocking HTTP.  Default routes:
``r1`` (``/r1``) and ``r2`` (``/r2``) on service ``s1``; ``r3`` (``/r3``) on service ``s2``;
``r0`` (``/none``) without a service; all with ``strip_path=False``.  ``gw.apply(...)``
reloads with other plugins/consumers.  ``handlers=[MyHandler]`` enables plugin classes that
are not installed (test doubles).  ``gw.request`` reuses one keep-alive connection
(``new_connection=True`` to open another); ``gw.raw(bytes)`` sends raw bytes on a new
connection and returns what came back before the server closed or ``timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import http.client
import itertools
import json
import socket
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import uvloop

from meshgate import snapshot
from meshgate.demo.upstreams import start_echo_upstream
from meshgate.proxy.filters.api import PluginHandler
from meshgate.proxy.filters.registry import PluginRegistry, spec_from_handler
from meshgate.proxy.http.settings import ProxySettings
from meshgate.proxy.runtime import ProxyRuntime

_ids = itertools.count(1)


def plugin(
    name: str,
    config: Mapping[str, Any] | None = None,
    *,
    route: str | None = None,
    service: str | None = None,
    consumer: str | None = None,
    **fields: Any,
) -> snapshot.PluginInstance:
    """A plugin instance for a snapshot (``fields``: protocols, enabled, ordering, id…)."""
    fields.setdefault("id", f"{name}-{next(_ids)}")
    return snapshot.PluginInstance(
        name=name,
        config=dict(config or {}),
        route=route,
        service=service,
        consumer=consumer,
        **fields,
    )


def route(route_id: str, path: str, service: str | None = "s1", **fields: Any) -> snapshot.Route:
    return snapshot.Route(
        id=route_id, name=route_id, paths=(path,), service=service, strip_path=False, **fields
    )


def default_routes() -> list[snapshot.Route]:
    return [
        route("r1", "/r1"),
        route("r2", "/r2"),
        route("r3", "/r3", service="s2"),
        route("r0", "/none", service=None),
    ]


def build_snapshot(
    upstream_port: int,
    *,
    routes: Sequence[snapshot.Route] | None = None,
    plugins: Sequence[snapshot.PluginInstance] = (),
    consumers: Sequence[snapshot.Consumer] = (),
) -> snapshot.Snapshot:
    endpoint = snapshot.Endpoint(host="127.0.0.1", port=upstream_port)
    return snapshot.Snapshot(
        listeners=(snapshot.Listener(name="proxy", address="127.0.0.1", port=0, reuse_port=False),),
        routes=tuple(routes if routes is not None else default_routes()),
        services=tuple(
            snapshot.Service(id=sid, name=sid, host="127.0.0.1", port=upstream_port, cluster=sid)
            for sid in ("s1", "s2")
        ),
        clusters=tuple(snapshot.Cluster(name=sid, endpoints=(endpoint,)) for sid in ("s1", "s2")),
        plugins=tuple(plugins),
        consumers=tuple(consumers),
    ).with_version()


@dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def json(self) -> Any:
        return json.loads(self.body)


class LiveGateway:
    """A running gateway; see the module docstring."""

    def __init__(self, registry: PluginRegistry, settings: ProxySettings) -> None:
        self.registry = registry
        self.settings = settings
        self.loop = uvloop.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runtime: ProxyRuntime | None = None
        self.upstream_port = 0
        self.port = 0
        self._upstream: asyncio.Server | None = None
        self._conn: http.client.HTTPConnection | None = None
        self.routes: Sequence[snapshot.Route] | None = None

    def run(self, coro: Any, timeout: float = 10) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    def start(self) -> None:
        self._thread.start()
        self._upstream, _ = self.run(start_echo_upstream("echo"))
        self.upstream_port = self._upstream.sockets[0].getsockname()[1]
        self.runtime = self.run(self._make_runtime())

    async def _make_runtime(self) -> ProxyRuntime:
        return ProxyRuntime(self.settings, plugins=self.registry)

    def apply(
        self,
        plugins: Sequence[snapshot.PluginInstance] = (),
        consumers: Sequence[snapshot.Consumer] = (),
        routes: Sequence[snapshot.Route] | None = None,
    ) -> None:
        """Run this configuration (raises ``ConfigError`` and keeps the old one if invalid)."""
        assert self.runtime is not None
        snap = build_snapshot(
            self.upstream_port,
            routes=routes if routes is not None else self.routes,
            plugins=plugins,
            consumers=consumers,
        )
        self.run(self.runtime.apply(snap))
        self.port = self.runtime.bound_ports()["proxy"]

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        new_connection: bool = False,
    ) -> Response:
        if self._conn is None or new_connection:
            if self._conn is not None:
                self._conn.close()
            self._conn = self.connection()
        conn = self._conn
        conn.request(method, path, body=body, headers=dict(headers or {}))
        res = conn.getresponse()
        data = res.read()
        if res.will_close:
            conn.close()
            self._conn = None
        return Response(res.status, res.headers, data)

    def raw(self, data: bytes, timeout: float = 5.0) -> bytes:
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as sock:
            sock.sendall(data)
            chunks = []
            with contextlib.suppress(TimeoutError):
                while True:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    chunks.append(chunk)
            return b"".join(chunks)

    def stop(self) -> None:
        if self._conn is not None:
            self._conn.close()
        if self.runtime is not None:
            self.run(self.runtime.shutdown(1.0))
        if self._upstream is not None:
            self._upstream.close()
        self.run(_cancel_leftovers())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()
        # What this gateway leaked is reported now, against this test, not a later one.
        gc.collect()


async def _cancel_leftovers() -> None:
    """Cancel what still runs on the loop (streams to clients that never hung up)."""
    current = asyncio.current_task()
    leftovers = [task for task in asyncio.all_tasks() if task is not current]
    for task in leftovers:
        task.cancel()
    await asyncio.gather(*leftovers, return_exceptions=True)
    await asyncio.get_running_loop().shutdown_asyncgens()


@contextlib.contextmanager
def live_gateway(
    *,
    plugins: Sequence[snapshot.PluginInstance] = (),
    consumers: Sequence[snapshot.Consumer] = (),
    routes: Sequence[snapshot.Route] | None = None,
    handlers: Sequence[type[PluginHandler]] = (),
    setting: str = "bundled",
    settings: ProxySettings | None = None,
) -> Iterator[LiveGateway]:
    """A gateway running this configuration, stopped on exit."""
    registry = PluginRegistry(setting)
    for cls in handlers:
        registry.register(spec_from_handler(cls.name, cls, "test"))
    gw = LiveGateway(registry, settings or ProxySettings(timer_resolution=0.05))
    gw.routes = routes
    try:
        gw.start()
        gw.apply(plugins, consumers)
        yield gw
    finally:
        gw.stop()
