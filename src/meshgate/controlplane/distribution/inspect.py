"""What the Mesh API shows of one dataplane: the snapshot it runs (``_config``), the policies
that apply to it and from where (``_rules``), and its connection (``_overview``) — this
replica's own status when it holds the sidecar, else what the replicas' records say.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from meshgate import snapshot
from meshgate.compiler.mesh_rules import dataplane_rules
from meshgate.controlplane.distribution.compiling import compile_for
from meshgate.controlplane.distribution.sessions import DataplaneStatus, connection_view

if TYPE_CHECKING:
    from meshgate.controlplane.distribution.engine import DistributionEngine


async def snapshot_of(
    engine: DistributionEngine, mesh_name: str, name: str
) -> snapshot.Snapshot | None:
    """The snapshot the dataplane runs (or would run); None when mesh/dataplane are unknown."""
    session = engine.sessions.get((mesh_name, name))
    if session is not None and session.pushed is not None:
        return session.pushed
    mesh = engine.state.meshes.get(mesh_name)
    dataplane = engine.state.dataplane(mesh_name, name)
    if mesh is None or dataplane is None:
        return None
    return await compile_for(engine, mesh, dataplane, None)


def rules(engine: DistributionEngine, mesh_name: str, name: str) -> dict[str, Any] | None:
    mesh = engine.state.meshes.get(mesh_name)
    dataplane = engine.state.dataplane(mesh_name, name)
    if mesh is None or dataplane is None:
        return None
    return dataplane_rules(
        mesh, dataplane, engine.state.mesh_dataplanes(mesh_name),
        engine.state.mesh_policies(mesh_name),
    )  # fmt: skip


def overview(engine: DistributionEngine, mesh_name: str, name: str) -> dict[str, Any]:
    """The dataplane's connection: this replica's own status when it holds the sidecar,
    else what the replicas' records say (online at another replica, or offline since)."""
    key, now = (mesh_name, name), engine.clock()
    status = engine.statuses.get(key, DataplaneStatus())
    if key in engine.sessions:
        return connection_view(status, None, engine.replicas.instance_id, now)
    verdict = engine.replicas.verdict(key, now.timestamp())
    return connection_view(status, verdict, engine.replicas.instance_id, now)
