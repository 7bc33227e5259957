"""The ``Snapshot``: everything one proxy needs to run, as plain, typed, serialisable data.

A snapshot is what the compiler produces from resources, what a control plane sends to a
data plane, what a proxy caches on disk and what ``inspect`` shows.  It holds no behaviour:
the proxy runtime builds its routers, balancers and filter chains from it once per version.

Durations are milliseconds (``*_ms``), as in Kong's entities.  Every model is frozen and
rejects unknown fields, so a snapshot received from elsewhere is validated on arrival.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

HttpProtocol = Literal["http", "https"]
RouteProtocol = Literal["http", "https", "grpc", "grpcs", "tcp", "tls", "tls_passthrough", "udp"]
Algorithm = Literal["round-robin", "consistent-hashing", "least-connections", "latency"]
HashOn = Literal["none", "consumer", "ip", "header", "cookie", "path", "query_arg", "uri_capture"]
CheckType = Literal["tcp", "http", "https", "grpc", "grpcs"]
PermissionAction = Literal["allow", "deny", "allow_with_shadow_deny"]


class Model(BaseModel):
    """Base of every snapshot model: immutable, strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class ExtensibleModel(Model):
    """A model with optional fields added after the first release (the mesh extensions).

    Fields in ``OMIT_WHEN_DEFAULT`` are left out of the serialized form while they hold their
    default, so a snapshot that does not use them serializes — and hashes — as before.
    """

    OMIT_WHEN_DEFAULT: ClassVar[frozenset[str]] = frozenset()

    @model_serializer(mode="wrap")
    def _omit_unused_extensions(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if isinstance(data, dict):
            fields = type(self).model_fields
            for name in self.OMIT_WHEN_DEFAULT:
                if name in data and getattr(self, name) == fields[name].default:
                    del data[name]
        return data


# --------------------------------------------------------------------------- listeners


class ListenerMTLS(Model):
    """Mesh mTLS on a listener (a sidecar's inbound): TLS terminated with a workload certificate.

    The listener's ``protocol`` (``http`` or ``tcp``) is what runs inside the TLS session.
    The proxy serves ``certificate`` (a ``Certificate.id``; no SNI selection) and asks every
    client for a certificate chaining to one of ``client_cas`` (``CACertificate.id``s):
    ``strict`` rejects a handshake without a valid client certificate; ``permissive`` also
    accepts TLS without a client certificate and plain (non-TLS) connections, told apart by
    the first byte (0x16 = a TLS handshake) — such clients have no identity.
    """

    certificate: str
    client_cas: tuple[str, ...]
    mode: Literal["strict", "permissive"] = "strict"


class PermissionRule(Model):
    """One rule of an inbound listener's traffic permissions (see ``Listener.permissions``).

    A client matches when the URI SANs of its (verified) certificate include every entry of
    ``identities``; an empty ``identities`` matches every client, with or without a certificate.
    """

    action: PermissionAction
    identities: tuple[str, ...] = ()
    origin: str | None = None  # the policy it came from, for logs and ``inspect``


class Listener(ExtensibleModel):
    """A socket the proxy accepts connections on."""

    OMIT_WHEN_DEFAULT = frozenset({"mtls", "permissions"})

    name: str
    address: str = "127.0.0.1"
    port: int = Field(ge=0, le=65535)
    protocol: Literal["http", "https", "tcp"] = "http"
    # https listeners pick a certificate by SNI from ``Snapshot.certificates``; when the client
    # sends no SNI (or none matches) ``default_certificate`` (an id) is used.
    default_certificate: str | None = None
    reuse_port: bool = True
    backlog: int = 2048
    # mesh extensions (None: plain listener as before)
    mtls: ListenerMTLS | None = None
    # Authorization per connection: the first rule the client matches decides; no match = deny.
    # A denied HTTP request gets 403 (the connection stays usable); a denied TCP connection
    # is closed before any byte is forwarded.  ``allow_with_shadow_deny`` allows and logs.
    # None = no authorization (everything allowed).
    permissions: tuple[PermissionRule, ...] | None = None


# --------------------------------------------------------------------------- routes


class WeightedBackend(Model):
    """One destination of a traffic split: a ``Service.id`` and its relative weight."""

    service: str
    weight: int = Field(default=1, ge=0)


class HeaderModifier(Model):
    """Edits of a header block, applied in this order: ``remove``, ``set`` (replace), ``add``."""

    set: tuple[tuple[str, str], ...] = ()
    add: tuple[tuple[str, str], ...] = ()
    remove: tuple[str, ...] = ()


class Route(ExtensibleModel):
    """A Kong route: matchers plus what to do with a match (Kong field names and defaults)."""

    OMIT_WHEN_DEFAULT = frozenset(
        {"listeners", "priority", "backends", "request_headers", "response_headers"}
    )

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
    # mesh extensions; their defaults keep a route exactly as before
    # Listener names this route is served on; empty = every listener.  A ``tcp`` listener
    # forwards each connection to the ``service`` of its (one) route with protocol ``tcp``.
    listeners: tuple[str, ...] = ()
    # Explicit rank, above all of Kong's criteria: routes with a priority are tried before
    # routes without, higher first; equal priorities fall back to Kong's order.
    priority: int | None = None
    # Traffic split: each request goes to one of these services, picked at random in
    # proportion to ``weight`` (weight 0 = never); overrides ``service`` when non-empty.
    backends: tuple[WeightedBackend, ...] = ()
    request_headers: HeaderModifier | None = None  # applied to the request sent upstream
    response_headers: HeaderModifier | None = None  # applied to the response sent back


# --------------------------------------------------------------------------- services


class Service(ExtensibleModel):
    """Where matched traffic goes and how: protocol, path prefix, timeouts, retries, TLS."""

    OMIT_WHEN_DEFAULT = frozenset(
        {"tls_peer_ids", "request_timeout_ms", "idle_timeout_ms", "retry"}
    )

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
    # mesh extensions; their defaults keep a service exactly as before
    # Expected identities (URI SANs, e.g. SPIFFE ids) of the upstream: when non-empty the
    # certificate is verified against ``ca_certificates`` but the host name is not checked;
    # instead one of its URI SANs must be in this list, else the connection fails (502).
    tls_peer_ids: tuple[str, ...] = ()
    # From the request being sent until the whole response has arrived (all tries
    # together); expiry = 504.  None = no such limit.
    request_timeout_ms: int | None = None
    # An upstream connection (pooled HTTP, or a proxied TCP connection) with no bytes in
    # either direction for this long is closed.  None = no limit.
    idle_timeout_ms: int | None = None
    retry: RetryPolicy | None = None


class RetryPolicy(Model):
    """When and how an HTTP request is tried again (on another endpoint when there is one).

    ``retry_on`` names (Envoy's): ``5xx`` (a 5xx response, or no response at all),
    ``gateway-error`` (502/503/504), ``reset`` (the connection broke before a response),
    ``connect-failure``, ``retriable-4xx`` (409), ``refused-stream`` (treated as reset on
    HTTP/1.1); ``retriable_status_codes`` adds exact statuses.  At most ``num_retries`` retries
    (``Service.retries`` is ignored when this is set); each try ends after
    ``per_try_timeout_ms`` (a timed-out try is retried like ``reset``); between tries the proxy
    waits a random time in [0, min(``backoff_max_ms``, ``backoff_base_ms`` * 2^(try-1))].
    Only requests whose body was fully buffered (or had none) are retried.
    """

    num_retries: int = Field(ge=0)
    retry_on: tuple[str, ...] = ()
    retriable_status_codes: tuple[int, ...] = ()
    per_try_timeout_ms: int | None = None
    backoff_base_ms: int = 25
    backoff_max_ms: int = 250


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


class Cluster(ExtensibleModel):
    """A balanced set of endpoints: a Kong Upstream, or a Service's own host:port."""

    OMIT_WHEN_DEFAULT = frozenset({"limits"})

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
    limits: ConnectionLimits | None = None  # mesh circuit breaker; None = unlimited


class ConnectionLimits(Model):
    """Circuit-breaker limits of one cluster, per proxy process (None = unlimited).

    ``max_connections``: open upstream connections to all endpoints together;
    ``max_pending_requests``: requests waiting for a connection once that limit is reached;
    ``max_requests``: requests in flight; ``max_retries``: retries in flight.  A request over
    a limit is answered at once with 503 and ``meshgate-error: upstream overflow``; a TCP
    connection over ``max_connections`` is closed.
    """

    max_connections: int | None = None
    max_pending_requests: int | None = None
    max_requests: int | None = None
    max_retries: int | None = None


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
        """A hash of everything but ``version``: equal content, equal hash.

        Two levels: each item's JSON is hashed on its own (``item_digest``) and the
        sections' item digests are hashed together (``combine_digests``), so a compiler
        that keeps the digests of unchanged items rehashes only what changed.
        """
        return combine_digests(
            (name, [item_digest(item) for item in getattr(self, name)]) for name in SECTIONS
        )

    def with_version(self) -> Snapshot:
        """This snapshot with ``version`` set to its content hash."""
        return self.model_copy(update={"version": self.content_hash()})


SECTIONS = tuple(name for name in Snapshot.model_fields if name != "version")
"""The snapshot's content fields, in the order ``content_hash`` reads them."""


def item_digest(item: Model) -> bytes:
    """The digest of one section item (a route, a service …) for ``combine_digests``."""
    return hashlib.sha256(item.model_dump_json().encode()).digest()[:16]


def combine_digests(sections: Iterable[tuple[str, list[bytes]]]) -> str:
    """``Snapshot.content_hash`` from each section's item digests, in ``SECTIONS`` order."""
    hasher = hashlib.sha256()
    for name, digests in sections:
        hasher.update(f"{name}:{len(digests)}:".encode())
        hasher.update(b"".join(digests))
    return hasher.hexdigest()[:16]
