"""Gateway compiler: a ``GatewayConfig`` (Kong entities) → the ``Snapshot`` a proxy runs.

A pure function: no I/O, no clock, no randomness; the same config and node settings always
give the same snapshot, in the same order (entities by ``(created_at, id)``, clusters by name).

Mapping rules (Kong's semantics):

* a Service whose ``host`` is an Upstream's name balances over that upstream's cluster
  ``upstream:<name>`` (targets, algorithm, hashing, healthchecks, host_header); any other
  Service gets its own cluster ``service:<id>`` with one endpoint ``host:port`` (a DNS name is
  kept as is: the proxy resolves it);
* every Upstream becomes a cluster, used or not, so ``inspect`` shows it;
* duplicate targets (same ``host:port`` in one upstream) collapse to the latest one — greatest
  ``created_at``, then position — as Kong's target history does; weight-0 targets stay, weight 0;
* routes of a disabled service (``enabled: false``) are left out of the snapshot, as Kong
  leaves them out of its router; plugins scoped to such a route go with them.  The service
  itself stays (with ``enabled=False``);
* ``Service.tls_verify`` unset on a TLS service becomes the node's ``tls_verify_default``.
"""

from __future__ import annotations

from typing import Any

from meshgate import snapshot
from meshgate.compiler.node import NodeSettings
from meshgate.errors import ConfigError, Violation
from meshgate.resources import GatewayConfig
from meshgate.resources.declarative import group_by
from meshgate.resources.kong import Plugin, Route, Service, Target, Upstream, parse_target
from meshgate.resources.kong_services import PROTOCOL_ORDER

_TLS_PROTOCOLS = frozenset({"https", "grpcs", "tls"})
# Shared by every implicit cluster: passing it spares pydantic a deep copy of the default.
_DEFAULT_HEALTHCHECKS = snapshot.Healthchecks()


def compile_gateway(config: GatewayConfig, node: NodeSettings) -> snapshot.Snapshot:
    """The snapshot for one gateway node; raises ``ConfigError`` if the two disagree."""
    certificate_ids = {c.id for c in config.certificates}
    if node.default_certificate is not None and node.default_certificate not in certificate_ids:
        raise ConfigError(
            [Violation("default_certificate", f"no such certificate: '{node.default_certificate}'")]
        )
    targets_of = group_by(config.targets, "upstream")
    snis_of = group_by(config.snis, "certificate")
    clusters = {
        c.name: c
        for c in (_upstream_cluster(u, targets_of.get(u.id, [])) for u in config.upstreams)
    }
    upstream_cluster_of = {u.name: f"upstream:{u.name}" for u in config.upstreams}
    services: list[snapshot.Service] = []
    violations: list[Violation] = []
    for service in config.services:
        cluster_name = upstream_cluster_of.get(service.host)
        if cluster_name is None:
            cluster_name = f"service:{service.id}"
            if service.port < 1:
                violations.append(
                    Violation(f"services.{service.name or service.id}.port", "must be 1..65535")
                )
                continue
            clusters[cluster_name] = snapshot.Cluster(
                name=cluster_name,
                healthchecks=_DEFAULT_HEALTHCHECKS,
                endpoints=(snapshot.Endpoint(host=service.host, port=service.port),),
            )
        services.append(_service(service, cluster_name, node))
    if violations:
        raise ConfigError(violations)
    disabled = {s.id for s in config.services if not s.enabled}
    routes = [_route(r) for r in config.routes if r.service not in disabled or r.service is None]
    kept_routes = {r.id for r in routes}
    plugins = [_plugin(p) for p in config.plugins if p.route is None or p.route in kept_routes]
    listeners = tuple(
        listener.model_copy(update={"default_certificate": node.default_certificate})
        if listener.protocol == "https"
        else listener
        for listener in node.listeners
    )
    return snapshot.Snapshot(
        listeners=listeners,
        routes=tuple(routes),
        services=tuple(services),
        clusters=tuple(clusters[name] for name in sorted(clusters)),
        plugins=tuple(plugins),
        consumers=tuple(
            snapshot.Consumer(
                id=_id(c.id),
                username=c.username,
                custom_id=c.custom_id,
                credentials=canonical(c.credentials),
                tags=c.tags,
            )
            for c in config.consumers
        ),
        certificates=tuple(
            snapshot.Certificate(
                id=_id(c.id),
                cert=c.cert,
                key=c.key,
                cert_alt=c.cert_alt,
                key_alt=c.key_alt,
                snis=tuple(sorted(s.name for s in snis_of.get(c.id, []))),
            )
            for c in config.certificates
        ),
        ca_certificates=tuple(
            snapshot.CACertificate(id=_id(ca.id), cert=ca.cert) for ca in config.ca_certificates
        ),
    ).with_version()


def canonical(value: Any) -> Any:
    """``value`` with every mapping's keys sorted, recursively, so the snapshot's JSON (and so
    its content hash) does not depend on the key order of the source file."""
    if isinstance(value, dict):
        return {key: canonical(value[key]) for key in sorted(value)}
    if isinstance(value, list | tuple):
        return type(value)(canonical(item) for item in value)
    return value


def _id(value: str | None) -> str:
    if value is None:  # a GatewayConfig from the loader always has ids
        raise ValueError("entity without an id: load configs through meshgate.resources")
    return value


def _service(service: Service, cluster: str, node: NodeSettings) -> snapshot.Service:
    tls_verify = service.tls_verify
    if tls_verify is None and service.protocol in _TLS_PROTOCOLS:
        tls_verify = node.tls_verify_default
    return snapshot.Service(
        id=_id(service.id),
        name=service.name,
        protocol=service.protocol,
        host=service.host,
        port=service.port,
        path=service.path,
        retries=service.retries,
        connect_timeout_ms=service.connect_timeout,
        write_timeout_ms=service.write_timeout,
        read_timeout_ms=service.read_timeout,
        tls_verify=tls_verify,
        tls_verify_depth=service.tls_verify_depth,
        ca_certificates=service.ca_certificates or (),
        client_certificate=service.client_certificate,
        enabled=service.enabled,
        cluster=cluster,
        tags=service.tags,
    )


def _latest_targets(targets: list[Target]) -> list[Target]:
    """One target per ``host:port`` — the latest — in (created_at, id) order."""
    latest: dict[str, tuple[float, int, Target]] = {}
    for position, target in enumerate(targets):
        rank = (target.created_at or 0.0, position)
        current = latest.get(target.target)
        if current is None or rank > current[:2]:
            latest[target.target] = (*rank, target)
    chosen = [entry[2] for entry in latest.values()]
    return sorted(chosen, key=lambda t: (t.created_at or 0.0, t.id or ""))


def _upstream_cluster(upstream: Upstream, targets: list[Target]) -> snapshot.Cluster:
    endpoints = []
    for target in _latest_targets(targets):
        host, port = parse_target(target.target)
        endpoints.append(
            snapshot.Endpoint(host=host, port=port, weight=target.weight, id=target.id)
        )
    return snapshot.Cluster(
        name=f"upstream:{upstream.name}",
        endpoints=tuple(endpoints),
        algorithm=upstream.algorithm,
        hash_on=upstream.hash_on,
        hash_fallback=upstream.hash_fallback,
        hash_on_header=upstream.hash_on_header,
        hash_fallback_header=upstream.hash_fallback_header,
        hash_on_cookie=upstream.hash_on_cookie,
        hash_on_cookie_path=upstream.hash_on_cookie_path,
        hash_on_query_arg=upstream.hash_on_query_arg,
        hash_fallback_query_arg=upstream.hash_fallback_query_arg,
        hash_on_uri_capture=upstream.hash_on_uri_capture,
        hash_fallback_uri_capture=upstream.hash_fallback_uri_capture,
        slots=upstream.slots,
        healthchecks=snapshot.Healthchecks.model_validate(upstream.healthchecks.model_dump()),
        host_header=upstream.host_header,
        upstream_id=upstream.id,
    )


def _route(route: Route) -> snapshot.Route:
    headers: dict[str, tuple[str, ...]] = {}
    for name, values in route.headers.items():
        lowered = name.lower()
        headers[lowered] = tuple(dict.fromkeys((*headers.get(lowered, ()), *values)))
    return snapshot.Route(
        id=_id(route.id),
        name=route.name,
        created_at=route.created_at or 0,
        protocols=tuple(p for p in PROTOCOL_ORDER if p in route.protocols),
        methods=tuple(m.upper() for m in route.methods),
        hosts=route.hosts,
        paths=route.paths,
        headers=dict(sorted(headers.items())),
        snis=route.snis,
        https_redirect_status_code=route.https_redirect_status_code,
        regex_priority=route.regex_priority,
        strip_path=route.strip_path,
        preserve_host=route.preserve_host,
        path_handling=route.path_handling,
        request_buffering=route.request_buffering,
        response_buffering=route.response_buffering,
        service=route.service,
        tags=route.tags,
    )


def _plugin(plugin: Plugin) -> snapshot.PluginInstance:
    ordering = canonical(plugin.ordering) if plugin.ordering is not None else None
    return snapshot.PluginInstance(
        id=_id(plugin.id),
        name=plugin.name,
        instance_name=plugin.instance_name,
        route=plugin.route,
        service=plugin.service,
        consumer=plugin.consumer,
        config=canonical(plugin.config),
        protocols=tuple(p for p in PROTOCOL_ORDER if p in plugin.protocols),
        enabled=plugin.enabled,
        ordering=ordering,
        tags=plugin.tags,
    )
