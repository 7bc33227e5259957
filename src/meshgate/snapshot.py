"""The ``Snapshot``: everything one proxy needs to run, as plain, typed, serialisable data.

A snapshot is what the compiler produces from resources, what a control plane sends to a
data plane, what a proxy caches on disk and what ``inspect`` shows.  It holds no behaviour:
the proxy runtime builds its routers, balancers and filter chains from it once per version.

Durations are milliseconds (``*_ms``), as in Kong's entities.  Every model is frozen and
rejects unknown fields, so a snapshot received from elsewhere is validated on arrival.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

HttpProtocol = Literal["http", "https"]
RouteProtocol = Literal["http", "https", "grpc", "grpcs", "tcp", "tls", "tls_passthrough", "udp"]
Algorithm = Literal["round-robin", "consistent-hashing", "least-connections", "latency"]
HashOn = Literal["none", "consumer", "ip", "header", "cookie", "path", "query_arg", "uri_capture"]
CheckType = Literal["tcp", "http", "https", "grpc", "grpcs"]


class Model(BaseModel):
    """Base of every snapshot model: immutable, strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


# --------------------------------------------------------------------------- listeners


class Listener(Model):
    """A socket the proxy accepts connections on."""

    name: str
    address: str = "127.0.0.1"
    port: int = Field(ge=0, le=65535)
    protocol: Literal["http", "https", "tcp"] = "http"
    # https listeners pick a certificate by SNI from ``Snapshot.certificates``; when the client
    # sends no SNI (or none matches) ``default_certificate`` (an id) is used.
    default_certificate: str | None = None
    reuse_port: bool = True
    backlog: int = 2048


# --------------------------------------------------------------------------- routes


class Route(Model):
    """A Kong route: matchers plus what to do with a match (Kong field names and defaults)."""

    id: str
    name: str | None = None
    created_at: int = 0
    protocols: tuple[RouteProtocol, ...] = ("http", "https")
    methods: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    # header name (lower-case) -> accepted values; values may be ``~*regex`` as in Kong.
    headers: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    snis: tuple[str, ...] = ()
    https_redirect_status_code: Literal[426, 301, 302, 307, 308] = 426
    regex_priority: int = 0
    strip_path: bool = True
    preserve_host: bool = False
    path_handling: Literal["v0", "v1"] = "v0"
    request_buffering: bool = True
    response_buffering: bool = True
    service: str | None = None  # a ``Service.id``; None = no service (plugins must answer)
    tags: tuple[str, ...] = ()


# --------------------------------------------------------------------------- services


class Service(Model):
    """Where matched traffic goes and how: protocol, path prefix, timeouts, retries, TLS."""

    id: str
    name: str | None = None
    protocol: Literal["http", "https", "grpc", "grpcs", "tcp", "tls", "tls_passthrough", "udp"] = (
        "http"
    )
    host: str
    port: int = 80
    path: str | None = None
    retries: int = 5
    connect_timeout_ms: int = 60000
    write_timeout_ms: int = 60000
    read_timeout_ms: int = 60000
    tls_verify: bool | None = None  # None = the node default (off, as Kong's proxy_ssl_verify)
    tls_verify_depth: int | None = None
    ca_certificates: tuple[str, ...] = ()  # ``CACertificate.id``s
    client_certificate: str | None = None  # ``Certificate.id``
    enabled: bool = True
    cluster: str  # the ``Cluster.name`` that balances this service's endpoints
    tags: tuple[str, ...] = ()


# --------------------------------------------------------------------------- clusters


class Endpoint(Model):
    """One target: an IP or a DNS name (resolved by the proxy), a port and a weight."""

    host: str
    port: int = Field(ge=1, le=65535)
    weight: int = Field(default=100, ge=0, le=65535)
    id: str | None = None  # the Kong Target id, when it came from one


class ActiveHealthy(Model):
    interval: float = 0
    http_statuses: tuple[int, ...] = (200, 302)
    successes: int = 0


class ActiveUnhealthy(Model):
    interval: float = 0
    http_statuses: tuple[int, ...] = (429, 404, 500, 501, 502, 503, 504, 505)
    tcp_failures: int = 0
    timeouts: int = 0
    http_failures: int = 0


class ActiveHealthcheck(Model):
    type: CheckType = "http"
    timeout: float = 1
    concurrency: int = 10
    http_path: str = "/"
    https_sni: str | None = None
    https_verify_certificate: bool = True
    headers: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    healthy: ActiveHealthy = ActiveHealthy()
    unhealthy: ActiveUnhealthy = ActiveUnhealthy()


class PassiveHealthy(Model):
    http_statuses: tuple[int, ...] = (
        200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304, 305, 306, 307, 308,
    )  # fmt: skip
    successes: int = 0


class PassiveUnhealthy(Model):
    http_statuses: tuple[int, ...] = (429, 500, 503)
    tcp_failures: int = 0
    timeouts: int = 0
    http_failures: int = 0


class PassiveHealthcheck(Model):
    type: CheckType = "http"
    healthy: PassiveHealthy = PassiveHealthy()
    unhealthy: PassiveUnhealthy = PassiveUnhealthy()
    # meshgate extension: seconds after which a passively-tripped target is tried again
    # (0 = never, Kong's behaviour).
    recovery_after: float = 0


class Healthchecks(Model):
    """Kong's upstream ``healthchecks`` record with Kong's defaults."""

    active: ActiveHealthcheck = ActiveHealthcheck()
    passive: PassiveHealthcheck = PassiveHealthcheck()
    threshold: float = 0


class Cluster(Model):
    """A balanced set of endpoints: a Kong Upstream, or a Service's own host:port."""

    name: str
    endpoints: tuple[Endpoint, ...] = ()
    algorithm: Algorithm = "round-robin"
    hash_on: HashOn = "none"
    hash_fallback: HashOn = "none"
    hash_on_header: str | None = None
    hash_fallback_header: str | None = None
    hash_on_cookie: str | None = None
    hash_on_cookie_path: str = "/"
    hash_on_query_arg: str | None = None
    hash_fallback_query_arg: str | None = None
    hash_on_uri_capture: str | None = None
    hash_fallback_uri_capture: str | None = None
    slots: int = 10000
    healthchecks: Healthchecks = Healthchecks()
    host_header: str | None = None
    upstream_id: str | None = None  # the Kong Upstream id, when it came from one


# --------------------------------------------------------------------------- plugins, consumers


class PluginInstance(Model):
    """A configured plugin and its scope (any of route/service/consumer, or none = global)."""

    id: str
    name: str
    instance_name: str | None = None
    route: str | None = None
    service: str | None = None
    consumer: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    protocols: tuple[str, ...] = ("grpc", "grpcs", "http", "https")
    enabled: bool = True
    ordering: dict[str, dict[str, tuple[str, ...]]] | None = None
    tags: tuple[str, ...] = ()


class Consumer(Model):
    id: str
    username: str | None = None
    custom_id: str | None = None
    # credential kind (e.g. ``keyauth_credentials``) -> credential records
    credentials: dict[str, tuple[dict[str, Any], ...]] = Field(default_factory=dict)
    tags: tuple[str, ...] = ()


# --------------------------------------------------------------------------- TLS material


class Certificate(Model):
    """A certificate/key pair (PEM) and the SNI names that select it."""

    id: str
    cert: str
    key: str
    cert_alt: str | None = None
    key_alt: str | None = None
    snis: tuple[str, ...] = ()


class CACertificate(Model):
    id: str
    cert: str


# --------------------------------------------------------------------------- the snapshot


class Snapshot(Model):
    """Everything one proxy runs on; ``version`` changes whenever any content changes."""

    version: str = ""
    listeners: tuple[Listener, ...] = ()
    routes: tuple[Route, ...] = ()
    services: tuple[Service, ...] = ()
    clusters: tuple[Cluster, ...] = ()
    plugins: tuple[PluginInstance, ...] = ()
    consumers: tuple[Consumer, ...] = ()
    certificates: tuple[Certificate, ...] = ()
    ca_certificates: tuple[CACertificate, ...] = ()

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, data: str | bytes) -> Snapshot:
        return cls.model_validate_json(data)

    def content_hash(self) -> str:
        """A hash of everything but ``version``: equal content, equal hash."""
        body = self.model_dump_json(exclude={"version"})
        return hashlib.sha256(body.encode()).hexdigest()[:16]

    def with_version(self) -> Snapshot:
        """This snapshot with ``version`` set to its content hash."""
        return self.model_copy(update={"version": self.content_hash()})
