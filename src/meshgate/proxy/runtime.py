"""Apply snapshots to a running proxy: compile, start what is new, swap atomically, stop the rest.

``build_config`` turns a ``Snapshot`` into the ``CompiledConfig`` the hot path reads: the
router, one ``Balancer`` per cluster (the previous one is reused when its cluster did not
change, so health state, counters and pools survive reloads), services with their upstream
TLS contexts, and the listeners' SNI certificate selection.  ``ProxyRuntime.apply`` swaps it
into the shared ``RuntimeState`` in one assignment: requests that already started finish on
the config they read; the next request sees the new one.

Reloads cost what changed: services and routes whose snapshot objects (and balancer, plugin
chains) are unchanged keep their compiled objects, the router is rebuilt only when a route
entry changed, and the server TLS context only when the certificates did.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from meshgate.proxy.balancer import Balancer
from meshgate.proxy.compiled import CompiledConfig, CompiledRoute, CompiledService, RuntimeState
from meshgate.proxy.filters.api import PluginHandler
from meshgate.proxy.filters.chain import CompiledPlugins, compile_plugins
from meshgate.proxy.filters.env import SnapshotEnv
from meshgate.proxy.filters.registry import PluginRegistry, default_registry
from meshgate.proxy.http.serve import drain, start_http_listener
from meshgate.proxy.http.settings import ProxySettings
from meshgate.proxy.mesh_http import compile_mesh_http
from meshgate.proxy.route_stage import EMPTY_BUILD, RouteBuild, build_routes, changed_positions
from meshgate.proxy.router import Router
from meshgate.proxy.tcp.listener import start_tcp_listener
from meshgate.proxy.tls.server import build_server_context
from meshgate.proxy.tls.upstream import UpstreamTLS

if TYPE_CHECKING:
    from meshgate import snapshot

_log = logging.getLogger("meshgate.runtime")

_DEFAULT_PORTS = {"http": 80, "https": 443}
# Routers for this many routes and more (~50 ms of work and up) are built in a thread, which
# is pure computation: traffic keeps flowing meanwhile, at the cost of a slower apply.
_THREADED_ROUTER_SIZE = 2000
# ... unless this few routes are new: the router is then built from the running one in a few
# milliseconds, less than a thread would take to get the GIL from a loop busy with traffic.
_INLINE_ROUTER_CHANGES = 100


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
        ssl_context = upstream_tls.context_for(
            verify, svc.tls_verify_depth, cas, client, svc.tls_peer_ids
        )
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


@dataclass(slots=True, eq=False)
class BuildCache:
    """What the last ``build_config`` made, for the next one to reuse.

    Valid only while ``config`` is the ``previous`` config handed to the next build (a config
    built but never applied invalidates it).
    """

    config: CompiledConfig | None = None
    routes: RouteBuild = EMPTY_BUILD
    plugins: CompiledPlugins | None = None


def build_config(
    snap: snapshot.Snapshot,
    previous: CompiledConfig | None,
    upstream_tls: UpstreamTLS,
    *,
    tls_verify_default: bool = False,
    plugins: PluginRegistry | None = None,
    node_resources: dict[str, Any] | None = None,
    cache: BuildCache | None = None,
) -> tuple[CompiledConfig, list[Balancer]]:
    """Compile ``snap``; returns the config and the balancers that must be started.

    Plugin chains are compiled first (a bad plugin config raises ``ConfigError`` before
    anything else is built); the handlers built are in ``config.plugin_handlers``, to be
    started before the config goes live.  With a ``cache`` of the build of ``previous``,
    unchanged services, routes and the router are taken over from ``previous``, and so are
    the plugin handlers and chains when no plugin, consumer or route-to-service link changed.
    """
    staged = stage_config(
        snap, previous, upstream_tls, tls_verify_default=tls_verify_default, plugins=plugins,
        node_resources=node_resources, cache=cache,
    )  # fmt: skip
    router = None
    if not staged.router_ready:
        router = Router.build(staged.entries, previous.router if previous is not None else None)
    return finish_config(staged, router)


@dataclass(slots=True, eq=False)
class StagedConfig:
    """A config built but for its router, which ``finish_config`` puts in (``ProxyRuntime``
    builds a big router in a thread, so that traffic keeps flowing meanwhile)."""

    config: CompiledConfig  # its router is the previous one until finished
    routes: RouteBuild
    created: list[Balancer]
    router_ready: bool  # the previous router serves these very entries
    previous: CompiledConfig | None
    cache: BuildCache | None
    plugins: CompiledPlugins

    @property
    def entries(self) -> list[tuple[snapshot.Route, CompiledRoute]]:
        return self.routes.entries


def finish_config(
    staged: StagedConfig, router: Router[CompiledRoute] | None
) -> tuple[CompiledConfig, list[Balancer]]:
    """The staged config with ``router`` (None: keep the reused one); see ``stage_config``."""
    config = staged.config
    if router is not None:
        config.router = router
    compile_mesh_http(config, staged.entries, staged.previous, scoped=staged.routes.scoped > 0)
    if staged.cache is not None:
        cache = staged.cache
        cache.config, cache.routes, cache.plugins = config, staged.routes, staged.plugins
    return config, staged.created


def stage_config(
    snap: snapshot.Snapshot,
    previous: CompiledConfig | None,
    upstream_tls: UpstreamTLS,
    *,
    tls_verify_default: bool = False,
    plugins: PluginRegistry | None = None,
    node_resources: dict[str, Any] | None = None,
    cache: BuildCache | None = None,
) -> StagedConfig:
    """``build_config`` but for the router (and the mesh fields that follow it)."""
    reuse = (
        cache if cache is not None and previous is not None and cache.config is previous else None
    )
    old_snap = previous.snapshot if reuse is not None and previous is not None else None
    if reuse is not None and reuse.plugins is not None and _same_plugin_inputs(old_snap, snap):
        compiled_plugins = reuse.plugins  # the same handlers (kept running) and chains
    else:
        compiled_plugins = compile_plugins(
            snap,
            plugins or default_registry(),
            SnapshotEnv(snap, node_resources),
            reuse.plugins if reuse is not None else None,
        )
    balancers, created = _compile_balancers(snap, previous.balancers if previous else {})
    same_tls = old_snap is not None and (
        old_snap.certificates == snap.certificates
        and old_snap.ca_certificates == snap.ca_certificates
    )
    old_services = previous.services if same_tls and previous is not None else {}
    services: dict[str, CompiledService] = {}
    for svc in snap.services:
        if svc.cluster not in balancers:
            raise ValueError(f"service {svc.id} refers to unknown cluster {svc.cluster!r}")
        old = old_services.get(svc.id)
        if old is not None and old.balancer is balancers[svc.cluster] and old.service == svc:
            services[svc.id] = old
            continue
        services[svc.id] = _compile_service(
            svc, balancers[svc.cluster], snap, upstream_tls, tls_verify_default
        )
    old_routes = reuse.routes if reuse is not None else EMPTY_BUILD
    same_targets = (
        reuse is not None
        and compiled_plugins is reuse.plugins
        and len(services) == len(old_services)
        and all(old_services.get(key) is value for key, value in services.items())
    )
    routes = build_routes(
        snap.routes, services, compiled_plugins.chains, old_routes, same_targets=same_targets
    )
    default_cert = next(
        (ln.default_certificate for ln in snap.listeners if ln.protocol == "https"), None
    )
    if same_tls and previous is not None and _default_cert(previous) == default_cert:
        server_ssl = previous.server_ssl_context
    else:
        server_ssl = (
            build_server_context(snap.certificates, default_cert) if snap.certificates else None
        )
    config = CompiledConfig(
        version=snap.version,
        router=previous.router if previous is not None else _EMPTY_ROUTER,
        services=services,
        balancers=balancers,
        server_ssl_context=server_ssl,
        snapshot=snap,
        plugin_handlers=compiled_plugins.handlers,
    )
    router_ready = reuse is not None and previous is not None and not routes.changed
    return StagedConfig(config, routes, created, router_ready, previous, cache, compiled_plugins)


def _same_plugin_inputs(old: snapshot.Snapshot | None, new: snapshot.Snapshot) -> bool:
    """Plugin handlers and chains depend on the plugins, the consumers (credentials) and
    which service each route belongs to: when none changed they can be kept."""
    if old is None or old.plugins != new.plugins or old.consumers != new.consumers:
        return False
    positions = changed_positions(new.routes, old.routes)
    if positions is None:
        return False
    return all(
        new.routes[i].id == old.routes[i].id and new.routes[i].service == old.routes[i].service
        for i in positions
    )


def _default_cert(config: CompiledConfig) -> str | None:
    listeners = config.snapshot.listeners if config.snapshot is not None else ()
    return next((ln.default_certificate for ln in listeners if ln.protocol == "https"), None)


_EMPTY_ROUTER: Router[CompiledRoute] = Router.build([])


def empty_config() -> CompiledConfig:
    """The config a proxy runs before its first snapshot: every request gets 404."""
    return CompiledConfig(version="", router=Router.build([]))


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
        self._build_cache = BuildCache()
        self._servers: dict[snapshot.Listener, asyncio.Server] = {}
        self._lock = asyncio.Lock()

    @property
    def version(self) -> str:
        return self.state.config.version

    async def apply(self, snap: snapshot.Snapshot) -> None:
        """Make ``snap`` the running config; on any error the running config is untouched."""
        async with self._lock:
            old = self.state.config
            staged = stage_config(
                snap,
                old,
                self._upstream_tls,
                tls_verify_default=self._tls_verify_default,
                plugins=self.plugins,
                node_resources=self._node_resources,
                cache=self._build_cache,
            )
            router = None
            if not staged.router_ready:
                # built from the running router (only read: it keeps serving meanwhile)
                if (
                    len(staged.entries) >= _THREADED_ROUTER_SIZE
                    and staged.routes.fresh > _INLINE_ROUTER_CHANGES
                ):
                    router = await asyncio.to_thread(Router.build, staged.entries, old.router)
                else:
                    router = Router.build(staged.entries, old.router)
            config, created = finish_config(staged, router)
            started: list[Balancer] = []
            handlers: list[PluginHandler] = []
            try:
                for balancer in created:
                    await balancer.start()
                    started.append(balancer)
                running = {id(h) for h in old.plugin_handlers}
                for handler in config.plugin_handlers:
                    if id(handler) not in running:  # else kept from the running config
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
            kept_handlers = {id(h) for h in config.plugin_handlers}
            await _stop_handlers([h for h in old.plugin_handlers if id(h) not in kept_handlers])
            _log.info("applied snapshot %s (%d routes)", snap.version, len(snap.routes))

    async def _sync_listeners(self, listeners: tuple[snapshot.Listener, ...]) -> None:
        wanted = set(listeners)
        for listener in wanted - self._servers.keys():
            start = start_tcp_listener if listener.protocol == "tcp" else start_http_listener
            self._servers[listener] = await start(listener, self.state, self.settings)
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
