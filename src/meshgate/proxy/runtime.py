"""Apply snapshots to a running proxy: compile, start what is new, swap atomically, stop the rest.

``build_config`` turns a ``Snapshot`` into the ``CompiledConfig`` the hot path reads: the
router, one ``Balancer`` per cluster (the previous one is reused when its cluster did not
change, so health state, counters and pools survive reloads), services with their upstream
TLS contexts, and the listeners' SNI certificate selection.  ``ProxyRuntime.apply`` swaps it
into the shared ``RuntimeState`` in one assignment: requests that already started finish on
the config they read; the next request sees the new one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from meshgate import snapshot
from meshgate.proxy.balancer import Balancer
from meshgate.proxy.compiled import CompiledConfig, CompiledRoute, CompiledService, RuntimeState
from meshgate.proxy.filters.api import PluginHandler
from meshgate.proxy.filters.chain import compile_plugins
from meshgate.proxy.filters.env import SnapshotEnv
from meshgate.proxy.filters.registry import PluginRegistry, default_registry
from meshgate.proxy.http.serve import drain, start_http_listener
from meshgate.proxy.http.settings import ProxySettings
from meshgate.proxy.router import Router
from meshgate.proxy.tls.server import build_server_context
from meshgate.proxy.tls.upstream import UpstreamTLS

_log = logging.getLogger("meshgate.runtime")

_DEFAULT_PORTS = {"http": 80, "https": 443}


def _compile_balancers(
    snap: snapshot.Snapshot, previous: Mapping[str, Balancer]
) -> tuple[dict[str, Balancer], list[Balancer]]:
    """Balancers for every cluster, reusing unchanged ones; also returns those newly made."""
    balancers: dict[str, Balancer] = {}
    created: list[Balancer] = []
    for cluster in snap.clusters:
        old = previous.get(cluster.name)
        if old is not None and old.cluster == cluster:
            balancers[cluster.name] = old
            continue
        balancer = Balancer(cluster, previous=old)
        balancers[cluster.name] = balancer
        created.append(balancer)
    return balancers, created


def _compile_service(
    svc: snapshot.Service,
    balancer: Balancer,
    snap: snapshot.Snapshot,
    upstream_tls: UpstreamTLS,
    tls_verify_default: bool,
) -> CompiledService:
    scheme = "https" if svc.protocol in ("https", "grpcs", "tls") else "http"
    host = balancer.cluster.host_header or svc.host
    if svc.port != _DEFAULT_PORTS.get(scheme) and balancer.cluster.host_header is None:
        host_header = f"{host}:{svc.port}"
    else:
        host_header = host
    ssl_context = None
    server_hostname = None
    if scheme == "https":
        cas = [c for c in snap.ca_certificates if c.id in svc.ca_certificates]
        client = next((c for c in snap.certificates if c.id == svc.client_certificate), None)
        verify = tls_verify_default if svc.tls_verify is None else svc.tls_verify
        ssl_context = upstream_tls.context_for(verify, svc.tls_verify_depth, cas, client)
        server_hostname = host
    return CompiledService(
        service=svc,
        balancer=balancer,
        scheme=scheme,
        host_header=host_header,
        path=svc.path,
        connect_timeout=svc.connect_timeout_ms / 1000,
        read_timeout=svc.read_timeout_ms / 1000,
        write_timeout=svc.write_timeout_ms / 1000,
        retries=svc.retries,
        ssl_context=ssl_context,
        server_hostname=server_hostname,
    )


def build_config(
    snap: snapshot.Snapshot,
    previous: CompiledConfig | None,
    upstream_tls: UpstreamTLS,
    *,
    tls_verify_default: bool = False,
    plugins: PluginRegistry | None = None,
    node_resources: dict[str, Any] | None = None,
) -> tuple[CompiledConfig, list[Balancer]]:
    """Compile ``snap``; returns the config and the balancers that must be started.

    Plugin chains are compiled first (a bad plugin config raises ``ConfigError`` before
    anything else is built); the handlers built are in ``config.plugin_handlers``, to be
    started before the config goes live.
    """
    compiled_plugins = compile_plugins(
        snap, plugins or default_registry(), SnapshotEnv(snap, node_resources)
    )
    balancers, created = _compile_balancers(snap, previous.balancers if previous else {})
    services: dict[str, CompiledService] = {}
    for svc in snap.services:
        if svc.cluster not in balancers:
            raise ValueError(f"service {svc.id} refers to unknown cluster {svc.cluster!r}")
        services[svc.id] = _compile_service(
            svc, balancers[svc.cluster], snap, upstream_tls, tls_verify_default
        )
    entries: list[tuple[snapshot.Route, CompiledRoute]] = []
    for route in snap.routes:
        service = services.get(route.service) if route.service else None
        if service is not None and not service.service.enabled:
            continue
        protocols = set(route.protocols)
        entries.append(
            (
                route,
                CompiledRoute(
                    route=route,
                    service=service,
                    https_only="http" not in protocols and "https" in protocols,
                    http_only="https" not in protocols and "http" in protocols,
                    plugin_chains=compiled_plugins.chains.get(route.id),
                ),
            )
        )
    default_cert = next(
        (ln.default_certificate for ln in snap.listeners if ln.protocol == "https"), None
    )
    server_ssl = (
        build_server_context(snap.certificates, default_cert) if snap.certificates else None
    )
    config = CompiledConfig(
        version=snap.version,
        router=Router.build(entries),
        services=services,
        balancers=balancers,
        server_ssl_context=server_ssl,
        snapshot=snap,
        plugin_handlers=compiled_plugins.handlers,
    )
    return config, created


def empty_config() -> CompiledConfig:
    """The config a proxy runs before its first snapshot: every request gets 404."""
    return CompiledConfig(version="", router=Router.build([]), snapshot=snapshot.Snapshot())


class ProxyRuntime:
    """One proxy process's running state: its config cell, listeners and balancers."""

    def __init__(
        self,
        settings: ProxySettings,
        *,
        tls_verify_default: bool = False,
        plugins: PluginRegistry | None = None,
    ) -> None:
        self.settings = settings
        self.plugins = plugins or default_registry()  # the node's ``plugins`` setting
        self._node_resources: dict[str, Any] = {}  # plugins' node-wide state, across snapshots
        self.state = RuntimeState(config=empty_config())
        self._tls_verify_default = tls_verify_default
        self._upstream_tls = UpstreamTLS()
        self._servers: dict[snapshot.Listener, asyncio.Server] = {}
        self._lock = asyncio.Lock()

    @property
    def version(self) -> str:
        return self.state.config.version

    async def apply(self, snap: snapshot.Snapshot) -> None:
        """Make ``snap`` the running config; on any error the running config is untouched."""
        async with self._lock:
            old = self.state.config
            config, created = build_config(
                snap,
                old,
                self._upstream_tls,
                tls_verify_default=self._tls_verify_default,
                plugins=self.plugins,
                node_resources=self._node_resources,
            )
            started: list[Balancer] = []
            handlers: list[PluginHandler] = []
            try:
                for balancer in created:
                    await balancer.start()
                    started.append(balancer)
                for handler in config.plugin_handlers:
                    await handler.start()
                    handlers.append(handler)
            except BaseException:
                for balancer in started:
                    await balancer.stop()
                await _stop_handlers(handlers)
                raise
            await self._sync_listeners(snap.listeners)
            self.state.config = config
            kept = {id(b) for b in config.balancers.values()}
            for balancer in old.balancers.values():
                if id(balancer) not in kept:
                    await balancer.stop()
            await _stop_handlers(old.plugin_handlers)
            _log.info("applied snapshot %s (%d routes)", snap.version, len(snap.routes))

    async def _sync_listeners(self, listeners: tuple[snapshot.Listener, ...]) -> None:
        wanted = {ln for ln in listeners if ln.protocol in ("http", "https")}
        for listener in wanted - self._servers.keys():
            self._servers[listener] = await start_http_listener(listener, self.state, self.settings)
            _log.info("listening on %s://%s:%d", listener.protocol, listener.address, listener.port)
        for listener in list(self._servers.keys() - wanted):
            server = self._servers.pop(listener)
            server.close()

    def bound_ports(self) -> dict[str, int]:
        """Listener name -> the port it is bound to (useful when a listener asked for port 0)."""
        ports: dict[str, int] = {}
        for listener, server in self._servers.items():
            for sock in server.sockets:
                ports[listener.name] = sock.getsockname()[1]
        return ports

    async def shutdown(self, timeout: float = 10.0) -> None:
        """Stop accepting, let in-flight requests finish (up to ``timeout``), stop balancers."""
        self.state.draining = True
        await drain(list(self._servers.values()), timeout)
        self._servers.clear()
        for balancer in self.state.config.balancers.values():
            await balancer.stop()
        await _stop_handlers(self.state.config.plugin_handlers)


async def _stop_handlers(handlers: list[PluginHandler]) -> None:
    """Stop plugin handlers; one that fails to stop is logged, the others still stop."""
    for handler in handlers:
        try:
            await handler.stop()
        except Exception:
            _log.exception("plugin %s (%s) failed to stop", handler.name, handler.instance.id)
