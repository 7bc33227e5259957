"""Mesh compiler: one dataplane's view of the mesh → the ``Snapshot`` its sidecar runs.

``compile_dataplane`` is a pure function: no I/O, no clock, no randomness.  The TLS material
(workload certificate, trusted roots) comes in from the control plane's CA; the same inputs
always give the same snapshot (listeners in inbound then outbound order, services and
clusters by id).  See ``mesh_inbound`` and ``mesh_outbound`` for what each part becomes,
``meshgate.resources.mesh.merge`` for how policies combine, and ``mesh_rules`` for the
``inspect`` view of the same merge.
"""

from __future__ import annotations

from collections.abc import Sequence

from meshgate import snapshot
from meshgate.compiler.mesh_context import MeshContext
from meshgate.compiler.mesh_inbound import compile_inbound
from meshgate.compiler.mesh_index import MeshIndex, build_mesh_index
from meshgate.compiler.mesh_outbound import compile_outbound
from meshgate.compiler.mesh_tls import MeshTLSMaterial
from meshgate.errors import ConfigError, Violation
from meshgate.resources.mesh.dataplane import Dataplane
from meshgate.resources.mesh.mesh import Mesh
from meshgate.resources.mesh.policy import Policy


def compile_dataplane(
    mesh: Mesh,
    dataplane: Dataplane,
    all_dataplanes: Sequence[Dataplane],
    policies: Sequence[Policy],
    ca_material: MeshTLSMaterial | None,
    *,
    index: MeshIndex | None = None,
) -> snapshot.Snapshot:
    """The snapshot of ``dataplane``'s sidecar.

    ``all_dataplanes`` and ``policies`` may hold other meshes' resources (they are ignored).
    ``ca_material`` is required when the mesh has mTLS and ignored when it has not.
    ``index`` is ``build_mesh_index(mesh.name, all_dataplanes)``, passed in when compiling
    many dataplanes of one mesh state (built here otherwise).
    Raises ``ConfigError`` when the inputs do not fit together.
    """
    violations: list[Violation] = []
    if dataplane.mesh != mesh.name:
        violations.append(Violation("mesh", f"dataplane is in mesh '{dataplane.mesh}'"))
    if mesh.mtls_enabled and ca_material is None:
        violations.append(Violation("mtls", "the mesh has mTLS on but no TLS material was given"))
    if violations:
        raise ConfigError(violations)
    if index is None:
        others = [d for d in all_dataplanes if d.name != dataplane.name]
        index = build_mesh_index(mesh.name, [*others, dataplane])
    context = MeshContext(
        mesh=mesh,
        dataplane=dataplane,
        index=index,
        policies=[p for p in policies if p.mesh == mesh.name],
        tls=ca_material if mesh.mtls_enabled else None,
    )
    listeners: list[snapshot.Listener] = []
    routes: list[snapshot.Route] = []
    for inbound in dataplane.networking.inbound:
        parts = compile_inbound(context, inbound)
        if parts is None:
            continue
        listeners.append(parts.listener)
        routes.append(parts.route)
        context.services[parts.service.id] = parts.service
        context.clusters[parts.cluster.name] = parts.cluster
    for outbound in dataplane.networking.outbound:
        outbound_parts = compile_outbound(context, outbound)
        listeners.append(outbound_parts.listener)
        routes.extend(outbound_parts.routes)
    tls = context.tls
    return snapshot.Snapshot(
        listeners=tuple(listeners),
        routes=tuple(routes),
        services=tuple(context.services[key] for key in sorted(context.services)),
        clusters=tuple(context.clusters[key] for key in sorted(context.clusters)),
        certificates=(tls.certificate(),) if tls else (),
        ca_certificates=tls.ca_certificates() if tls else (),
    ).with_version()
