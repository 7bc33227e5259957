"""Starting ``tcp`` listeners, and which service each one forwards to.

A listener restarted by a reload (its permissions changed) judges the live connections of
the listener it replaces again: those the new permissions deny are closed.

A ``tcp`` listener forwards every connection to the service of its route: the route with
protocol ``tcp`` that names the listener in ``Route.listeners`` (else the first ``tcp``
route naming no listener).  ``Route.backends`` splits connections by weight.  The choice
is resolved once per config (``TcpListenerRoute.pick_service`` compares the config object
and re-resolves only after a reload), so a connection costs no look-up by name.
"""

from __future__ import annotations

import asyncio
import random
import socket
from typing import TYPE_CHECKING

from meshgate.proxy.compiled import CompiledConfig, CompiledService, RuntimeState
from meshgate.proxy.http.serve import create_listening_server
from meshgate.proxy.http.settings import ProxySettings
from meshgate.proxy.tcp.proxy import TcpDownstream, register_server, tcp_engine_for
from meshgate.proxy.tls.mesh_accept import accept_plan
from meshgate.proxy.tls.permissions import InboundGuard

if TYPE_CHECKING:
    from meshgate import snapshot


class TcpListenerRoute:
    """One ``tcp`` listener: its permissions and, per config, the services it forwards to."""

    __slots__ = ("_config", "_services", "_weights", "guard", "listener")

    def __init__(self, listener: snapshot.Listener) -> None:
        self.listener = listener.name
        self.guard: InboundGuard | None = None
        if listener.mtls is not None or listener.permissions is not None:
            self.guard = InboundGuard.of(listener)
        self._config: CompiledConfig | None = None
        self._services: list[CompiledService] = []
        self._weights: list[int] | None = None

    def pick_service(self, config: CompiledConfig) -> CompiledService | None:
        if config is not self._config:
            self._resolve(config)
        services = self._services
        if not services:
            return None
        if self._weights is None:
            return services[0]
        return random.choices(services, self._weights)[0]

    def _resolve(self, config: CompiledConfig) -> None:
        self._config = config
        self._services = []
        self._weights = None
        route = _route_of(config.snapshot, self.listener) if config.snapshot else None
        if route is None:
            return
        if route.backends:
            pairs = [
                (config.services[b.service], b.weight)
                for b in route.backends
                if b.weight > 0 and b.service in config.services
            ]
            self._services = [service for service, _ in pairs]
            self._weights = [weight for _, weight in pairs]
        elif route.service is not None and route.service in config.services:
            self._services = [config.services[route.service]]
        self._services = [s for s in self._services if s.service.enabled]
        if self._weights is not None and len(self._weights) != len(self._services):
            self._weights = None


def _route_of(snap: snapshot.Snapshot, listener: str) -> snapshot.Route | None:
    fallback = None
    for route in snap.routes:
        if "tcp" not in route.protocols:
            continue
        if listener in route.listeners:
            return route
        if not route.listeners and fallback is None:
            fallback = route
    return fallback


async def start_tcp_listener(
    listener: snapshot.Listener,
    state: RuntimeState,
    settings: ProxySettings,
    sock: socket.socket | None = None,
) -> asyncio.Server:
    """Listen for a ``tcp`` listener (mesh mTLS when it has ``mtls``)."""
    engine = tcp_engine_for(state, settings)
    route = TcpListenerRoute(listener)
    for connection in list(engine.connections):  # a reload changed this listener
        if connection.route.listener == listener.name and connection.route.guard != route.guard:
            connection.rejudge(route.guard)

    def make_app(is_tls: bool) -> TcpDownstream:
        return TcpDownstream(engine, route, tls=is_tls)

    def factory() -> asyncio.BaseProtocol:
        return TcpDownstream(engine, route, tls=False)

    plan = accept_plan(
        listener,
        state,
        make_app,
        handshake_timeout=settings.client_header_timeout,
        server_speaks_first=True,
    )
    if plan is None:
        server = await create_listening_server(listener, factory, None, None, sock)
    else:
        server = await create_listening_server(
            listener, plan.factory, plan.ssl, plan.handshake_timeout, sock
        )
    register_server(server, engine)
    return server
