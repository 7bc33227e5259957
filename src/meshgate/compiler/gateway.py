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

``GatewayCompiler`` is the same function with memory: it keeps each entity's compiled object
and reuses it while the entity (and what else it depends on) is equal, so a change recompiles
only what changed and unchanged snapshot objects stay the very same objects (the runtime
reuses what it built from them by identity).  The version — the content hash of the snapshot
JSON — is assembled from cached per-object JSON.  ``compile_gateway`` is a fresh compiler.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from meshgate import snapshot
from meshgate.compiler import vault
from meshgate.compiler.gateway_entities import (
    canonical,
    entity_id,
    plugin_of,
    route_of,
    service_of,
    upstream_cluster,
)
from meshgate.compiler.node import NodeSettings
from meshgate.errors import ConfigError, Violation
from meshgate.resources import GatewayConfig
from meshgate.resources.declarative import group_by
from meshgate.resources.kong import CACertificate, Consumer, Plugin, Route

__all__ = ["GatewayCompiler", "canonical", "compile_gateway"]

# Shared by every implicit cluster: passing it spares pydantic a deep copy of the default.
_DEFAULT_HEALTHCHECKS = snapshot.Healthchecks()

In = TypeVar("In", bound=BaseModel)
Out = TypeVar("Out")


class _Memo(Generic[Out]):
    """Compiled objects by entity key, reused while their inputs are the same (or equal)."""

    def __init__(self) -> None:
        self._kept: dict[Hashable, tuple[Any, Out]] = {}
        self._next: dict[Hashable, tuple[Any, Out]] = {}

    def get(self, key: Hashable, inputs: Any, build: Callable[[], Out]) -> Out:
        hit = self._kept.get(key)
        same = hit is not None and (hit[0] is inputs or hit[0] == inputs)
        out = hit[1] if hit is not None and same else build()
        self._next[key] = (inputs, out)
        return out

    def begin(self) -> None:
        self._next = {}

    def commit(self) -> None:
        """Keep only what the last (successful) compile used."""
        self._kept, self._next = self._next, {}


class _Section(Generic[In, Out]):
    """A tuple of entities compiled item by item; unchanged items keep their compiled object.

    Entities are matched by position first (a change rarely moves the others), else by id.
    """

    def __init__(self) -> None:
        self._inputs: tuple[In, ...] = ()
        self._outputs: list[Out] = []
        self._pending: tuple[tuple[In, ...], list[Out]] | None = None

    def run(self, inputs: tuple[In, ...], build: Callable[[In], Out]) -> list[Out]:
        old_in, old_out = self._inputs, self._outputs
        if inputs is old_in:
            outputs = old_out
        elif len(inputs) == len(old_in):
            outputs = [
                out if new is old or new == old else build(new)
                for new, old, out in zip(inputs, old_in, old_out, strict=True)
            ]
        else:
            by_id = {getattr(i, "id", None): (i, o) for i, o in zip(old_in, old_out, strict=True)}
            outputs = []
            for new in inputs:
                hit = by_id.get(getattr(new, "id", None))
                same = hit is not None and (hit[0] is new or hit[0] == new)
                outputs.append(hit[1] if hit is not None and same else build(new))
        self._pending = (inputs, outputs)
        return outputs

    def commit(self) -> None:
        if self._pending is not None:
            self._inputs, self._outputs = self._pending
            self._pending = None


def compile_gateway(config: GatewayConfig, node: NodeSettings) -> snapshot.Snapshot:
    """The snapshot for one gateway node; raises ``ConfigError`` if the two disagree."""
    return GatewayCompiler().compile(config, node)


class GatewayCompiler:
    """``compile_gateway`` that reuses the compiled objects of unchanged entities."""

    def __init__(self) -> None:
        self._routes: _Section[Route, snapshot.Route] = _Section()
        self._plugins: _Section[Plugin, snapshot.PluginInstance] = _Section()
        self._consumers: _Section[Consumer, snapshot.Consumer] = _Section()
        self._ca_certificates: _Section[CACertificate, snapshot.CACertificate] = _Section()
        self._services: _Memo[snapshot.Service] = _Memo()
        self._clusters: _Memo[snapshot.Cluster] = _Memo()
        self._certificates: _Memo[snapshot.Certificate] = _Memo()
        self._vaulted: set[str] = set()  # plugins whose config holds a vault reference
        # (inputs, result) of the sections compiled as a whole
        self._backends: tuple[tuple[Any, ...], tuple[Any, Any]] | None = None
        self._tls: tuple[tuple[Any, ...], Any] | None = None
        self._listeners: tuple[tuple[Any, ...], Any] | None = None
        self._digests: dict[str, tuple[tuple[Any, ...], list[bytes]]] = {}

    def compile(
        self,
        config: GatewayConfig,
        node: NodeSettings,
        *,
        fallback_certificate: snapshot.Certificate | None = None,
    ) -> snapshot.Snapshot:
        """The snapshot for ``node``; ``fallback_certificate`` is served by https listeners
        when the config has no certificate at all (Kong's self-signed default)."""
        certificate_ids = {c.id for c in config.certificates}
        if node.default_certificate is not None and node.default_certificate not in certificate_ids:
            raise ConfigError(
                [Violation("default_certificate", f"no such certificate: '{node.default_certificate}'")]
            )  # fmt: skip
        services, clusters = self._services_and_clusters(config, node)
        disabled = {s.id for s in config.services if not s.enabled}
        routes = self._routes.run(config.routes, route_of)
        plugins = self._plugins.run(config.plugins, self._plugin)
        if self._vaulted:  # resolved again each time: the secret may have changed
            plugins = [
                plugin_of(p) if p.id in self._vaulted else compiled
                for p, compiled in zip(config.plugins, plugins, strict=True)
            ]
        if disabled:
            dropped = {r.id for r in config.routes if r.service in disabled}
            routes = [r for r in routes if r.id not in dropped]
            plugins = [p for p in plugins if p.route is None or p.route not in dropped]
        certificates = self._certificates_of(config)
        listeners, certificates = self._listeners_of(node, certificates, fallback_certificate)
        sections: dict[str, tuple[Any, ...]] = {
            "listeners": listeners,
            "routes": tuple(routes),
            "services": services,
            "clusters": clusters,
            "plugins": tuple(plugins),
            "consumers": tuple(self._consumers.run(config.consumers, _consumer_of)),
            "certificates": certificates,
            "ca_certificates": tuple(self._ca_certificates.run(config.ca_certificates, _ca_of)),
        }
        version = self._content_hash(sections)
        for section in (self._routes, self._plugins, self._consumers, self._ca_certificates):
            section.commit()
        # Trusted parts, validated when they were made: no need to walk them again.
        fields: dict[str, Any] = {"version": version, **sections}
        return snapshot.Snapshot.model_construct(**fields)

    def _plugin(self, plugin: Plugin) -> snapshot.PluginInstance:
        self._vaulted.discard(plugin.id or "")
        if vault.contains_reference(plugin.config):
            self._vaulted.add(plugin.id or "")
        return plugin_of(plugin)

    def _services_and_clusters(
        self, config: GatewayConfig, node: NodeSettings
    ) -> tuple[tuple[snapshot.Service, ...], tuple[snapshot.Cluster, ...]]:
        key = (config.services, config.upstreams, config.targets, node.tls_verify_default)
        if self._backends is not None and all(
            a is b for a, b in zip(key, self._backends[0], strict=True)
        ):
            kept: tuple[Any, Any] = self._backends[1]
            return kept
        self._services.begin()
        self._clusters.begin()
        clusters = self._upstream_clusters(config)
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
                clusters[cluster_name] = self._clusters.get(
                    cluster_name, (service.host, service.port), _implicit_cluster(cluster_name, service.host, service.port)
                )  # fmt: skip
            inputs = (service, cluster_name, node.tls_verify_default)
            services.append(
                self._services.get(
                    service.id, inputs, _bind(service_of, service, cluster_name, node)
                )
            )
        if violations:
            raise ConfigError(violations)
        self._services.commit()
        self._clusters.commit()
        result = (tuple(services), tuple(clusters[name] for name in sorted(clusters)))
        self._backends = (key, result)
        return result

    def _upstream_clusters(self, config: GatewayConfig) -> dict[str, snapshot.Cluster]:
        targets_of = group_by(config.targets, "upstream")
        clusters: dict[str, snapshot.Cluster] = {}
        for upstream in config.upstreams:
            targets = targets_of.get(upstream.id, [])
            cluster = self._clusters.get(
                f"upstream:{upstream.id}",
                (upstream, tuple(targets)),
                _bind(upstream_cluster, upstream, targets),
            )
            clusters[cluster.name] = cluster
        return clusters

    def _certificates_of(self, config: GatewayConfig) -> tuple[snapshot.Certificate, ...]:
        key = (config.certificates, config.snis)
        # vault references are resolved again each time: the secret may have changed
        resolved = vault.resolved_certificates(config.certificates)
        if (
            not resolved
            and self._tls is not None
            and all(a is b for a, b in zip(key, self._tls[0], strict=True))
        ):
            kept: tuple[snapshot.Certificate, ...] = self._tls[1]
            return kept
        self._certificates.begin()
        snis_of = group_by(config.snis, "certificate")
        certificates = []
        for c in config.certificates:
            names = tuple(sorted(s.name for s in snis_of.get(c.id, [])))
            pems = resolved.get(entity_id(c.id)) or vault.certificate_fields(c)
            certificates.append(
                self._certificates.get(
                    c.id,
                    (c, names, pems),
                    _bind(snapshot.Certificate, id=entity_id(c.id), snis=names, **pems),
                )
            )
        self._certificates.commit()
        self._tls = (key, tuple(certificates))
        return tuple(certificates)

    def _listeners_of(
        self,
        node: NodeSettings,
        certificates: tuple[snapshot.Certificate, ...],
        fallback: snapshot.Certificate | None,
    ) -> tuple[tuple[snapshot.Listener, ...], tuple[snapshot.Certificate, ...]]:
        default_certificate = node.default_certificate
        has_https = any(listener.protocol == "https" for listener in node.listeners)
        if fallback is not None and has_https and not certificates:
            certificates = (fallback,)
            default_certificate = fallback.id
        key = (node.listeners, default_certificate)
        if self._listeners is not None and self._listeners[0] == key:
            kept: tuple[snapshot.Listener, ...] = self._listeners[1]
            return kept, certificates
        listeners = tuple(
            listener.model_copy(update={"default_certificate": default_certificate})
            if listener.protocol == "https"
            else listener
            for listener in node.listeners
        )
        self._listeners = (key, listeners)
        return listeners, certificates

    def _content_hash(self, sections: dict[str, tuple[Any, ...]]) -> str:
        """``Snapshot.content_hash`` of a snapshot made of ``sections``, from cached digests."""
        return snapshot.combine_digests(
            (name, self._section_digests(name, sections[name])) for name in snapshot.SECTIONS
        )

    def _section_digests(self, name: str, items: tuple[Any, ...]) -> list[bytes]:
        """The item digests of one section, each object hashed once while it lives."""
        cached = self._digests.get(name)
        if cached is not None and cached[0] is items:
            return cached[1]
        old_items, old_digests = cached if cached is not None else ((), [])
        digest = snapshot.item_digest
        if len(items) == len(old_items):
            digests = [
                known if new is old else digest(new)
                for new, old, known in zip(items, old_items, old_digests, strict=True)
            ]
        else:
            by_object = {id(o): d for o, d in zip(old_items, old_digests, strict=True)}
            digests = [by_object.get(id(new)) or digest(new) for new in items]
        self._digests[name] = (items, digests)
        return digests


def _bind(function: Callable[..., Out], *args: Any, **kwargs: Any) -> Callable[[], Out]:
    return lambda: function(*args, **kwargs)


def _implicit_cluster(name: str, host: str, port: int) -> Callable[[], snapshot.Cluster]:
    return lambda: snapshot.Cluster(
        name=name,
        healthchecks=_DEFAULT_HEALTHCHECKS,
        endpoints=(snapshot.Endpoint(host=host, port=port),),
    )


def _ca_of(ca: CACertificate) -> snapshot.CACertificate:
    return snapshot.CACertificate(id=entity_id(ca.id), cert=ca.cert)


def _consumer_of(c: Consumer) -> snapshot.Consumer:
    return snapshot.Consumer(
        id=entity_id(c.id),
        username=c.username,
        custom_id=c.custom_id,
        credentials=canonical(c.credentials),
        tags=c.tags,
    )
