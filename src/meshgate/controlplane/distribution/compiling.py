"""A dataplane's snapshot from the engine's mesh state: its mesh's index (cached per mesh
until a change there), its policies and, in an mTLS mesh, its workload certificate (signed
from the session's CSR when due) and the mesh's trusted roots.

Functions of the engine's state, kept out of ``engine`` to keep it about sessions and pushes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from meshgate import snapshot
from meshgate.agent.dataplane.protocol import LOCAL_KEY
from meshgate.compiler.mesh import compile_dataplane
from meshgate.compiler.mesh_index import MeshIndex, build_mesh_index
from meshgate.compiler.mesh_tls import MeshTLSMaterial
from meshgate.controlplane.distribution.sessions import (
    DataplaneStatus,
    Session,
    session_certificate,
)

if TYPE_CHECKING:
    from meshgate.controlplane.ca.certs import WorkloadCert
    from meshgate.controlplane.distribution.engine import DistributionEngine
    from meshgate.resources.mesh.dataplane import Dataplane
    from meshgate.resources.mesh.mesh import Mesh


def mesh_index(engine: DistributionEngine, mesh: str) -> MeshIndex:
    index = engine.indexes.get(mesh)
    if index is None:
        index = engine.indexes[mesh] = build_mesh_index(mesh, engine.state.mesh_dataplanes(mesh))
    return index


async def compile_for(
    engine: DistributionEngine, mesh: Mesh, dataplane: Dataplane, session: Session | None
) -> snapshot.Snapshot:
    """The snapshot of ``dataplane``; with no ``session`` (inspect) it has no certificate."""
    material = None
    if mesh.mtls_enabled:
        roots = await engine.ca.trusted_roots(mesh)
        cert = await _certificate(engine, session, mesh, dataplane) if session else None
        material = MeshTLSMaterial(cert.cert if cert else "", LOCAL_KEY, roots)
    return compile_dataplane(
        mesh,
        dataplane,
        (),  # the index holds what the compile needs of the other dataplanes
        engine.state.mesh_policies(mesh.name),
        material,
        index=mesh_index(engine, mesh.name),
    )


async def _certificate(
    engine: DistributionEngine, session: Session, mesh: Mesh, dataplane: Dataplane
) -> WorkloadCert:
    """The session's workload certificate, (re)signed from its CSR when due."""
    status = engine.statuses.setdefault(session.key, DataplaneStatus())
    return await session_certificate(engine.ca, session, status, mesh, dataplane, engine.clock())
