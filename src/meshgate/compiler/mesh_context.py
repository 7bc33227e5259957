"""What compiling one dataplane needs at hand: its mesh, peers, policies and TLS material.

``MeshContext`` also builds the outbound ``Service``/``Cluster`` pair of a destination (a
service, or a subset of it by tags), with mesh mTLS and the ``to`` policies applied; inbound
and outbound compilers share it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from meshgate import snapshot
from meshgate.compiler.mesh_index import MeshIndex
from meshgate.compiler.mesh_tls import WORKLOAD_CERT_ID, MeshTLSMaterial
from meshgate.policies.mesh_circuit_breaker import api as circuit_breaker_api
from meshgate.policies.mesh_circuit_breaker import compile as circuit_breaker
from meshgate.policies.mesh_health_check import api as health_check_api
from meshgate.policies.mesh_health_check import compile as health_check
from meshgate.policies.mesh_retry import api as retry_api
from meshgate.policies.mesh_retry import compile as retry
from meshgate.policies.mesh_timeout import api as timeout_api
from meshgate.policies.mesh_timeout import compile as timeout
from meshgate.resources.mesh.base import SERVICE_TAG
from meshgate.resources.mesh.dataplane import Dataplane
from meshgate.resources.mesh.identity import spiffe_id
from meshgate.resources.mesh.merge import applicable, merged_to
from meshgate.resources.mesh.mesh import Mesh
from meshgate.resources.mesh.policy import Policy

AppProtocol = Literal["http", "tcp"]
_DEFAULT_HEALTHCHECKS = snapshot.Healthchecks()
_TO_TYPES = (timeout_api.TYPE, retry_api.TYPE, health_check_api.TYPE, circuit_breaker_api.TYPE)


def destination_id(service: str, subset: Mapping[str, str] | None = None) -> str:
    """``mesh:orders`` or ``mesh:orders{version=v2}``: a destination's Service id/cluster name."""
    if not subset:
        return f"mesh:{service}"
    return f"mesh:{service}{{" + ",".join(f"{k}={v}" for k, v in sorted(subset.items())) + "}"


@dataclass(slots=True)
class MeshContext:
    mesh: Mesh
    dataplane: Dataplane
    index: MeshIndex  # the serving inbounds of every service of the mesh
    policies: Sequence[Policy]  # every policy of the mesh
    tls: MeshTLSMaterial | None
    services: dict[str, snapshot.Service] = field(default_factory=dict)
    clusters: dict[str, snapshot.Cluster] = field(default_factory=dict)
    _ordered: dict[str, list[Policy]] = field(default_factory=dict)

    def ordered(self, policy_type: str) -> list[Policy]:
        """Policies of ``policy_type`` selecting this dataplane, least important first."""
        found = self._ordered.get(policy_type)
        if found is None:
            found = applicable(self.policies, policy_type, self.dataplane)
            self._ordered[policy_type] = found
        return found

    @property
    def ca_ids(self) -> tuple[str, ...]:
        return tuple(ca.id for ca in self.tls.ca_certificates()) if self.tls else ()

    def destination_protocol(self, service: str, declared: str | None) -> AppProtocol:
        """``declared`` (the outbound's ``kuma.io/protocol``) if set, else ``http`` when every
        serving inbound of ``service`` speaks HTTP, else ``tcp``."""
        if declared is not None:
            return "http" if declared == "http" else "tcp"
        return "http" if self.index.protocols(service) == {"http"} else "tcp"

    def destination(
        self, service: str, protocol: AppProtocol, subset: Mapping[str, str] | None = None
    ) -> str:
        """Make (once) the Service and Cluster of a destination; returns the Service id."""
        ident = destination_id(service, subset)
        if ident in self.services:
            return ident
        policies = tuple(p for kind in _TO_TYPES for p in self.ordered(kind))
        key = (ident, protocol, self.ca_ids, tuple(id(p) for p in policies))
        cached = self.index.memo.get(key)
        # the memo keeps the policies it was computed from, so their ids stay unique
        if cached is not None and all(a is b for a, b in zip(cached[0], policies, strict=True)):
            mesh_service, cluster = cached[1], cached[2]
        else:
            mesh_service, cluster = self._build_destination(ident, service, protocol, subset)
            self.index.memo[key] = (policies, mesh_service, cluster)
        self.services[ident] = mesh_service
        self.clusters[ident] = cluster
        return ident

    def _build_destination(
        self, ident: str, service: str, protocol: AppProtocol, subset: Mapping[str, str] | None
    ) -> tuple[snapshot.Service, snapshot.Cluster]:
        tls = self.tls is not None
        endpoints = [
            snapshot.Endpoint(host=e.host, port=e.port)
            for e in self.index.endpoints(service, subset)
        ]
        mesh_service = snapshot.Service(
            id=ident,
            name=service,
            protocol=("https" if tls else "http")
            if protocol == "http"
            else ("tls" if tls else "tcp"),
            host=service,
            port=endpoints[0].port if endpoints else 80,
            cluster=ident,
            tls_verify=True if tls else None,
            ca_certificates=self.ca_ids,
            client_certificate=WORKLOAD_CERT_ID if tls else None,
            tls_peer_ids=(spiffe_id(self.mesh.name, service),) if tls else (),
        )
        cluster = snapshot.Cluster(
            name=ident, endpoints=tuple(endpoints), healthchecks=_DEFAULT_HEALTHCHECKS
        )
        required = {SERVICE_TAG: service, **(subset or {})}
        return self.apply_to_policies(mesh_service, cluster, required, protocol)

    def apply_to_policies(
        self,
        service: snapshot.Service,
        cluster: snapshot.Cluster,
        destination_tags: Mapping[str, str],
        protocol: AppProtocol,
    ) -> tuple[snapshot.Service, snapshot.Cluster]:
        """The ``to`` configuration of timeouts, retries, health checks, circuit breakers."""
        merged = merged_to(self.ordered(timeout_api.TYPE), destination_tags)
        if merged is not None:
            conf = timeout_api.TimeoutConf.model_validate(merged.conf)
            service = timeout.apply_to_service(service, conf)
        merged = merged_to(self.ordered(retry_api.TYPE), destination_tags)
        if merged is not None:
            service = retry.apply_to_service(
                service, retry_api.RetryConf.model_validate(merged.conf)
            )
        http = protocol == "http"
        merged = merged_to(self.ordered(health_check_api.TYPE), destination_tags)
        if merged is not None:
            cluster = health_check.apply_to_cluster(
                cluster,
                health_check_api.HealthCheckConf.model_validate(merged.conf),
                http=http,
                mtls=self.tls is not None,
            )
        merged = merged_to(self.ordered(circuit_breaker_api.TYPE), destination_tags)
        if merged is not None:
            cluster = circuit_breaker.apply_to_cluster(
                cluster,
                circuit_breaker_api.CircuitBreakerConf.model_validate(merged.conf),
                http=http,
            )
        return service, cluster
