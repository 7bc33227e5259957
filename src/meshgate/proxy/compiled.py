"""Per-snapshot runtime objects the hot path reads: routes, services, their balancers.

``proxy.runtime`` builds one ``CompiledConfig`` from each ``Snapshot``; the HTTP server reads
``RuntimeState.config`` once at the start of a request and uses only what is here — nothing
is looked up by name or validated per request.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from meshgate import snapshot
    from meshgate.proxy.balancer import Balancer
    from meshgate.proxy.filters.api import PluginHandler
    from meshgate.proxy.filters.chain import Chain
    from meshgate.proxy.http.policy import HeaderEdit, ServicePolicy, WeightedChoice
    from meshgate.proxy.router import Router


@dataclass(slots=True, eq=False)
class CompiledService:
    """A service ready for proxying: balancer, timeouts in seconds, upstream TLS."""

    service: snapshot.Service
    balancer: Balancer
    scheme: str  # "http" or "https" towards the upstream
    host_header: str  # Host sent upstream when the route does not preserve the client's
    path: str | None
    connect_timeout: float
    read_timeout: float
    write_timeout: float
    retries: int
    ssl_context: ssl.SSLContext | None = None
    server_hostname: str | None = None  # SNI towards the upstream
    # retries, request/idle timeouts and cluster limits (mesh); None: none of them
    policy: ServicePolicy | None = None


@dataclass(slots=True, eq=False)
class CompiledRoute:
    """A route plus the service it proxies to (None: plugins must answer, else 503)."""

    route: snapshot.Route
    service: CompiledService | None
    https_only: bool  # protocols lack "http": plain-HTTP requests get redirected / 426
    http_only: bool  # protocols lack "https"
    plugins: tuple[Any, ...] = ()  # unused; see ``plugin_chains``
    # (http chain, https chain) of plugins on this route; None (or a None item): no plugins,
    # and the request costs nothing extra
    plugin_chains: tuple[Chain | None, Chain | None] | None = None
    backends: WeightedChoice | None = None  # a traffic split: overrides ``service``
    request_edit: HeaderEdit | None = None  # ``route.request_headers``, compiled
    response_edit: HeaderEdit | None = None  # ``route.response_headers``, compiled


@dataclass(slots=True, eq=False)
class CompiledConfig:
    """One snapshot, compiled."""

    version: str
    router: Router[CompiledRoute]
    services: dict[str, CompiledService] = field(default_factory=dict)
    balancers: dict[str, Balancer] = field(default_factory=dict)
    server_ssl_context: ssl.SSLContext | None = None
    snapshot: snapshot.Snapshot | None = None
    plugin_handlers: list[PluginHandler] = field(default_factory=list)  # built for this snapshot
    # listener name -> its router, when routes are scoped to listeners (``router`` then
    # serves the listeners no route names); None: ``router`` serves every listener
    listener_routers: dict[str, Router[CompiledRoute]] | None = None


@dataclass(slots=True, eq=False)
class RuntimeState:
    """The one mutable cell the server reads: swapping ``config`` is the atomic reload."""

    config: CompiledConfig
    draining: bool = False
