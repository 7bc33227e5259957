"""Mesh resources: ``Mesh``, ``Dataplane``, the policy envelope, ``targetRef`` and merging.

Policy specs themselves live in ``meshgate.policies.<name>.api``; ``meshgate.policies``
holds the registry of policy types and the loaders that know all of them.
"""

from meshgate.resources.mesh.base import PROTOCOL_TAG, SERVICE_TAG, duration_ms
from meshgate.resources.mesh.dataplane import Dataplane, Inbound, Outbound
from meshgate.resources.mesh.documents import (
    MeshResource,
    parse_document,
    parse_documents,
    resource_key,
    split_documents,
)
from meshgate.resources.mesh.mesh import Mesh
from meshgate.resources.mesh.policy import FromItem, Policy, PolicySpec, ToItem
from meshgate.resources.mesh.targetref import TargetRef

__all__ = [
    "PROTOCOL_TAG",
    "SERVICE_TAG",
    "Dataplane",
    "FromItem",
    "Inbound",
    "Mesh",
    "MeshResource",
    "Outbound",
    "Policy",
    "PolicySpec",
    "TargetRef",
    "ToItem",
    "duration_ms",
    "parse_document",
    "parse_documents",
    "resource_key",
    "split_documents",
]
