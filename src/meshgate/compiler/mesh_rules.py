"""The ``inspect`` view of policy merging: per dataplane, which policies apply and from where.

``dataplane_rules`` returns plain JSON data (what ``GET /meshes/{m}/dataplanes/{n}/_rules``
serves) computed with the same functions the compiler uses, so it cannot disagree with the
snapshot:

* ``policies``: every policy selecting the dataplane, per type, least important first;
* ``to``: per policy type and destination service, the merged ``default`` and its origins;
* ``from``: per inbound, the merged ``default`` of MeshTimeout / MeshCircuitBreaker;
* ``permissions``: per inbound, the rules MeshTrafficPermission gives (first match decides),
  and whether they are enforced (only with mTLS);
* ``routes``: per HTTP destination, the merged MeshHTTPRoute rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from meshgate.policies import SPEC_TYPES
from meshgate.policies.mesh_http_route import api as route_api
from meshgate.policies.mesh_http_route.compile import merged_rules
from meshgate.policies.mesh_traffic_permission import api as permission_api
from meshgate.policies.mesh_traffic_permission.compile import permission_rules
from meshgate.resources.mesh.base import SERVICE_TAG
from meshgate.resources.mesh.dataplane import Dataplane
from meshgate.resources.mesh.merge import applicable, merged_from, merged_to
from meshgate.resources.mesh.mesh import Mesh
from meshgate.resources.mesh.policy import Policy

_FROM_TYPES = ("MeshTimeout", "MeshCircuitBreaker")


def dataplane_rules(
    mesh: Mesh,
    dataplane: Dataplane,
    all_dataplanes: Sequence[Dataplane],
    policies: Sequence[Policy],
) -> dict[str, Any]:
    """The rules view of one dataplane (JSON-ready)."""
    in_mesh = [p for p in policies if p.mesh == mesh.name]
    ordered = {kind: applicable(in_mesh, kind, dataplane) for kind in SPEC_TYPES}
    destinations = list(dict.fromkeys(o.service for o in dataplane.networking.outbound))
    view: dict[str, Any] = {
        "mesh": mesh.name,
        "dataplane": dataplane.name,
        "policies": [
            {"type": kind, "name": p.name, "targetRef": p.spec.target_ref.label()}
            for kind, found in ordered.items()
            for p in found
        ],
        "to": [],
        "from": [],
        "permissions": [],
        "routes": [],
    }
    for kind, found in ordered.items():
        if kind in (route_api.TYPE, permission_api.TYPE):
            continue
        for destination in destinations:
            merged = merged_to(found, {SERVICE_TAG: destination})
            if merged is not None:
                view["to"].append(
                    {
                        "type": kind,
                        "destination": destination,
                        "default": merged.conf,
                        "origins": [o.as_dict() for o in merged.origins],
                    }
                )
    address = dataplane.networking.address
    for inbound in dataplane.networking.inbound:
        name = f"inbound:{inbound.address or address}:{inbound.port}"
        for kind in _FROM_TYPES:
            merged = merged_from(applicable(in_mesh, kind, dataplane, inbound.tags), {})
            if merged is not None:
                view["from"].append(
                    {
                        "type": kind,
                        "inbound": name,
                        "default": merged.conf,
                        "origins": [o.as_dict() for o in merged.origins],
                    }
                )
        rules = permission_rules(
            applicable(in_mesh, permission_api.TYPE, dataplane, inbound.tags), mesh.name
        )
        view["permissions"].append(
            {
                "inbound": name,
                "enforced": mesh.mtls_enabled,
                "rules": [r.model_dump(mode="json") for r in rules],
            }
        )
    for destination in destinations:
        view["routes"].append(
            {
                "destination": destination,
                "rules": [r.view() for r in merged_rules(ordered[route_api.TYPE], destination)],
            }
        )
    return view
