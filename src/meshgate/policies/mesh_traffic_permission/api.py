"""MeshTrafficPermission: which clients may reach the selected proxies' inbounds.

::

    type: MeshTrafficPermission
    name: allow-orders-to-payments
    spec:
      targetRef: {kind: MeshService, name: payments}      # which inbounds (default: Mesh)
      from:
        - targetRef: {kind: MeshSubset, tags: {kuma.io/service: orders}}
          default: {action: Allow}                        # Allow | Deny | AllowWithShadowDeny

Clients are told apart by the identities of their mTLS certificates, so permissions only take
effect on meshes with mTLS on; with mTLS on, a client no item allows is denied.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from meshgate.resources.mesh.base import MeshModel
from meshgate.resources.mesh.policy import FromItem, PolicySpec

TYPE = "MeshTrafficPermission"
Action = Literal["Allow", "Deny", "AllowWithShadowDeny"]


class PermissionConf(MeshModel):
    action: Action


class MeshTrafficPermissionSpec(PolicySpec):
    FROM_KINDS = ("Mesh", "MeshSubset", "MeshService", "MeshServiceSubset")

    from_: list[FromItem[PermissionConf]] = Field(default=[], alias="from")
