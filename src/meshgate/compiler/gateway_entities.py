"""Gateway compiler, one entity at a time: each Kong entity → its snapshot object.

Pure functions used by ``compiler.gateway``; each depends only on its arguments, so the
compiler can cache their results per entity and reuse them while the inputs stay equal.
"""

from __future__ import annotations

from typing import Any

from meshgate import snapshot
from meshgate.compiler import vault
from meshgate.compiler.node import NodeSettings
from meshgate.resources.kong import Plugin, Route, Service, Target, Upstream, parse_target
from meshgate.resources.kong_services import PROTOCOL_ORDER

TLS_PROTOCOLS = frozenset({"https", "grpcs", "tls"})


def canonical(value: Any) -> Any:
    """``value`` with every mapping's keys sorted, recursively, so the snapshot's JSON (and so
    its content hash) does not depend on the key order of the source file."""
    if isinstance(value, dict):
        return {key: canonical(value[key]) for key in sorted(value)}
    if isinstance(value, list | tuple):
        return type(value)(canonical(item) for item in value)
    return value


def entity_id(value: str | None) -> str:
    if value is None:  # a GatewayConfig from the loader always has ids
        raise ValueError("entity without an id: load configs through meshgate.resources")
    return value


def service_of(service: Service, cluster: str, node: NodeSettings) -> snapshot.Service:
    tls_verify = service.tls_verify
    if tls_verify is None and service.protocol in TLS_PROTOCOLS:
        tls_verify = node.tls_verify_default
    return snapshot.Service(
        id=entity_id(service.id),
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


def latest_targets(targets: list[Target]) -> list[Target]:
    """One target per ``host:port`` — the latest — in (created_at, id) order."""
    latest: dict[str, tuple[float, int, Target]] = {}
    for position, target in enumerate(targets):
        rank = (target.created_at or 0.0, position)
        current = latest.get(target.target)
        if current is None or rank > current[:2]:
            latest[target.target] = (*rank, target)
    chosen = [entry[2] for entry in latest.values()]
    return sorted(chosen, key=lambda t: (t.created_at or 0.0, t.id or ""))


def upstream_cluster(upstream: Upstream, targets: list[Target]) -> snapshot.Cluster:
    endpoints = []
    for target in latest_targets(targets):
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


def route_of(route: Route) -> snapshot.Route:
    headers: dict[str, tuple[str, ...]] = {}
    for name, values in route.headers.items():
        lowered = name.lower()
        headers[lowered] = tuple(dict.fromkeys((*headers.get(lowered, ()), *values)))
    return snapshot.Route(
        id=entity_id(route.id),
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


def plugin_of(plugin: Plugin) -> snapshot.PluginInstance:
    ordering = canonical(plugin.ordering) if plugin.ordering is not None else None
    return snapshot.PluginInstance(
        id=entity_id(plugin.id),
        name=plugin.name,
        instance_name=plugin.instance_name,
        route=plugin.route,
        service=plugin.service,
        consumer=plugin.consumer,
        config=canonical(vault.plugin_config(plugin)),
        protocols=tuple(p for p in PROTOCOL_ORDER if p in plugin.protocols),
        enabled=plugin.enabled,
        ordering=ordering,
        tags=plugin.tags,
    )
