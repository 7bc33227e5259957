"""A dataplane's inbounds → listeners that terminate mesh mTLS and forward to the local app.

Per inbound (``state: Ignored`` ones get none): a listener on ``address:port`` (``http`` or
``tcp``; ``kafka`` is proxied as TCP) with the workload certificate, client certificates
checked against the mesh CAs (required in ``strict`` mode, optional in ``permissive``) and the
permissions MeshTrafficPermission gives; one catch-all route to a Service/Cluster
``inbound:<address>:<port>`` whose single endpoint is ``serviceAddress:servicePort``.
``from`` rules of MeshTimeout and MeshCircuitBreaker apply to that Service/Cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from pydantic import BaseModel

from meshgate import snapshot
from meshgate.compiler.mesh_context import MeshContext
from meshgate.compiler.mesh_tls import WORKLOAD_CERT_ID
from meshgate.policies.mesh_circuit_breaker import api as circuit_breaker_api
from meshgate.policies.mesh_circuit_breaker import compile as circuit_breaker
from meshgate.policies.mesh_timeout import api as timeout_api
from meshgate.policies.mesh_timeout import compile as timeout
from meshgate.policies.mesh_traffic_permission import api as permission_api
from meshgate.policies.mesh_traffic_permission.compile import permission_rules
from meshgate.resources.mesh.dataplane import Inbound
from meshgate.resources.mesh.merge import applicable, merged_from

_DEFAULT_HEALTHCHECKS = snapshot.Healthchecks()
ConfT = TypeVar("ConfT", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class InboundParts:
    listener: snapshot.Listener
    route: snapshot.Route
    service: snapshot.Service
    cluster: snapshot.Cluster


def inbound_name(context: MeshContext, inbound: Inbound) -> str:
    return f"inbound:{inbound.address or context.dataplane.networking.address}:{inbound.port}"


def _from_conf(
    context: MeshContext, inbound: Inbound, policy_type: str, conf_type: type[ConfT]
) -> ConfT | None:
    """The merged ``from`` configuration of ``policy_type`` for ``inbound``, validated.

    The same policies give the same result: it is kept in the index's memo, shared by the
    dataplanes compiled with that index (with the policies, so their ids stay unique).
    """
    ordered = tuple(applicable(context.policies, policy_type, context.dataplane, inbound.tags))
    key = ("from", policy_type, tuple(id(p) for p in ordered))
    cached = context.index.memo.get(key)
    if cached is not None and all(a is b for a, b in zip(cached[0], ordered, strict=True)):
        conf: ConfT | None = cached[1]
        return conf
    merged = merged_from(ordered, client_tags={})
    conf = None if merged is None else conf_type.model_validate(merged.conf)
    context.index.memo[key] = (ordered, conf)
    return conf


def compile_inbound(context: MeshContext, inbound: Inbound) -> InboundParts | None:
    if inbound.state == "Ignored":
        return None
    name = inbound_name(context, inbound)
    http = inbound.effective_protocol == "http"
    service = snapshot.Service(
        id=name,
        name=inbound.service,
        protocol="http" if http else "tcp",
        host=inbound.service_address,
        port=inbound.app_port,
        retries=0,  # the local app is one endpoint: nothing to fail over to
        cluster=name,
    )
    cluster = snapshot.Cluster(
        name=name,
        endpoints=(snapshot.Endpoint(host=inbound.service_address, port=inbound.app_port),),
        healthchecks=_DEFAULT_HEALTHCHECKS,
    )
    dataplane, policies = context.dataplane, context.policies
    timeouts = _from_conf(context, inbound, timeout_api.TYPE, timeout_api.TimeoutConf)
    if timeouts is not None:
        service = timeout.apply_to_service(service, timeouts)
    limits = _from_conf(
        context, inbound, circuit_breaker_api.TYPE, circuit_breaker_api.CircuitBreakerConf
    )
    if limits is not None:
        cluster = circuit_breaker.apply_to_cluster(cluster, limits, http=http)
    mtls: snapshot.ListenerMTLS | None = None
    permissions: tuple[snapshot.PermissionRule, ...] | None = None
    if context.tls is not None:
        mtls = snapshot.ListenerMTLS(
            certificate=WORKLOAD_CERT_ID, client_cas=context.ca_ids, mode=context.mesh.mtls_mode
        )
        ordered = applicable(policies, permission_api.TYPE, dataplane, inbound.tags)
        permissions = permission_rules(ordered, context.mesh.name)
    listener = snapshot.Listener(
        name=name,
        address=inbound.address or dataplane.networking.address,
        port=inbound.port,
        protocol="http" if http else "tcp",
        mtls=mtls,
        permissions=permissions,
    )
    route = snapshot.Route(
        id=name,
        name=inbound.service,
        protocols=("http", "https") if http else ("tcp",),
        paths=("/",) if http else (),
        strip_path=False,
        preserve_host=True,
        service=name,
        listeners=(name,),
    )
    return InboundParts(listener, route, service, cluster)
