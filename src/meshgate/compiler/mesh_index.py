"""``MeshIndex``: the endpoints of every service of a mesh, indexed once for many compiles.

Compiling a dataplane needs, per destination, the serving inbounds of that service across
the mesh.  Scanning every dataplane per destination is quadratic over a mesh; a control
plane compiling all its dataplanes after a change builds one index and passes it to each
``compile_dataplane`` call.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from meshgate.resources.mesh.dataplane import Dataplane, Protocol


@dataclass(frozen=True, slots=True)
class ServiceEndpoint:
    """One serving inbound of a service."""

    dataplane: str
    host: str
    port: int
    tags: Mapping[str, str]
    protocol: Protocol


@dataclass(frozen=True, slots=True)
class MeshIndex:
    mesh: str
    by_service: Mapping[str, tuple[ServiceEndpoint, ...]] = field(default_factory=dict)
    # results shared by the compiles using this index (``MeshContext.destination``): many
    # dataplanes see the same destination through the same policies
    memo: dict[Hashable, tuple[Any, ...]] = field(default_factory=dict, compare=False)

    def endpoints(
        self, service: str, subset: Mapping[str, str] | None = None
    ) -> list[ServiceEndpoint]:
        """Serving endpoints of ``service`` whose tags include ``subset``, in a stable order."""
        found = self.by_service.get(service, ())
        if not subset:
            return list(found)
        return [e for e in found if all(e.tags.get(k) == v for k, v in subset.items())]

    def protocols(self, service: str) -> set[str]:
        return {e.protocol for e in self.by_service.get(service, ())}


def build_mesh_index(mesh: str, dataplanes: Iterable[Dataplane]) -> MeshIndex:
    """Index the serving inbounds of ``mesh``'s dataplanes (others are ignored) by service.

    When several dataplanes share a name, the last one wins (a fresher copy of it).
    """
    latest = {d.name: d for d in dataplanes if d.mesh == mesh}
    grouped: dict[str, list[ServiceEndpoint]] = defaultdict(list)
    for name in sorted(latest):
        dataplane = latest[name]
        for inbound in sorted(dataplane.networking.inbound, key=lambda i: i.port):
            if inbound.serving:
                grouped[inbound.service].append(
                    ServiceEndpoint(
                        dataplane=name,
                        host=inbound.address or dataplane.networking.address,
                        port=inbound.port,
                        tags=inbound.tags,
                        protocol=inbound.effective_protocol,
                    )
                )
    return MeshIndex(mesh, {service: tuple(found) for service, found in grouped.items()})
