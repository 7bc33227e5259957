"""MeshHealthCheck: how a proxy actively probes the endpoints of a destination.

::

    type: MeshHealthCheck
    name: orders-hc
    spec:
      targetRef: {kind: Mesh}
      to:
        - targetRef: {kind: MeshService, name: orders}
          default:
            interval: 10s
            timeout: 2s
            unhealthyThreshold: 3
            healthyThreshold: 1
            http: {path: /health, expectedStatuses: [200, 204]}
"""

from __future__ import annotations

from pydantic import Field

from meshgate.resources.mesh.base import Duration, MeshModel
from meshgate.resources.mesh.policy import PolicySpec, ToItem

TYPE = "MeshHealthCheck"


class HTTPCheck(MeshModel):
    disabled: bool | None = None
    path: str | None = Field(default=None, pattern=r"^/")
    expected_statuses: list[int] | None = Field(default=None, min_length=1)

    def statuses_ok(self) -> bool:
        return all(100 <= code <= 599 for code in self.expected_statuses or ())


class TCPCheck(MeshModel):
    disabled: bool | None = None


class HealthCheckConf(MeshModel):
    interval: Duration | None = None
    timeout: Duration | None = None
    unhealthy_threshold: int | None = Field(default=None, ge=1)
    healthy_threshold: int | None = Field(default=None, ge=1)
    http: HTTPCheck | None = None
    tcp: TCPCheck | None = None


class MeshHealthCheckSpec(PolicySpec):
    to: list[ToItem[HealthCheckConf]] = Field(min_length=1)
