"""What the Mesh API shows of one dataplane: the snapshot it runs (``_config``), the policies
that apply to it and from where (``_rules``), and its connection (``_overview``) — this
replica's own status when it holds the sidecar, else what the store's records say.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from meshgate import snapshot
from meshgate.compiler.mesh_rules import dataplane_rules
from meshgate.controlplane.distribution.compiling import compile_for
from meshgate.controlplane.distribution.sessions import DataplaneStatus, connection_view
from meshgate.controlplane.distribution.status_records import read_statuses

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


async def overview(engine: DistributionEngine, mesh_name: str, name: str) -> dict[str, Any]:
    """The dataplane's connection: this replica's own status when it holds the sidecar,
    else what the store says: online at another replica or offline since when (the replicas'
    records), with the ACKs and certificate its last holder stored (``status_records``)."""
    return (await overviews(engine, mesh_name, [name]))[0]


async def overviews(
    engine: DistributionEngine, mesh_name: str, names: list[str]
) -> list[dict[str, Any]]:
    """``overview`` of each of ``names`` (the store is read for those held elsewhere)."""
    now, me = engine.clock(), engine.replicas.instance_id
    elsewhere = [name for name in names if (mesh_name, name) not in engine.sessions]
    stored = await read_statuses(engine.store, mesh_name, elsewhere) if elsewhere else {}
    views = []
    for name in names:
        key = (mesh_name, name)
        status = stored.get(name) or engine.statuses.get(key) or DataplaneStatus()
        if key in engine.sessions:
            views.append(connection_view(status, None, me, now))
        else:
            verdict = engine.replicas.verdict(key, now.timestamp())
            views.append(connection_view(status, verdict, me, now))
    return views
