"""MeshCircuitBreaker: limits on connections/requests and ejection of failing endpoints.

::

    type: MeshCircuitBreaker
    name: orders-cb
    spec:
      targetRef: {kind: Mesh}
      to:
        - targetRef: {kind: MeshService, name: orders}
          default:
            connectionLimits: {maxConnections: 512, maxPendingRequests: 100, maxRequests: 512}
            outlierDetection:
              baseEjectionTime: 30s
              detectors: {totalFailures: {consecutive: 10}}

``from`` items (``targetRef: Mesh`` only) limit the inbound's connections to the local app.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from meshgate.resources.mesh.base import Duration, MeshModel
from meshgate.resources.mesh.policy import FromItem, PolicySpec, ToItem

TYPE = "MeshCircuitBreaker"


class ConnectionLimits(MeshModel):
    max_connections: int | None = Field(default=None, ge=1)
    max_connection_pools: int | None = Field(default=None, ge=1)
    max_pending_requests: int | None = Field(default=None, ge=1)
    max_requests: int | None = Field(default=None, ge=1)
    max_retries: int | None = Field(default=None, ge=0)


class Consecutive(MeshModel):
    consecutive: int | None = Field(default=None, ge=1)


class Detectors(MeshModel):
    total_failures: Consecutive | None = None
    gateway_failures: Consecutive | None = None
    local_origin_failures: Consecutive | None = None
    success_rate: dict[str, Any] | None = None  # accepted, not enforced yet
    failure_percentage: dict[str, Any] | None = None  # accepted, not enforced yet


class OutlierDetection(MeshModel):
    disabled: bool | None = None
    interval: Duration | None = None
    base_ejection_time: Duration | None = None
    max_ejection_percent: int | None = Field(default=None, ge=0, le=100)
    split_external_and_local_errors: bool | None = None
    healthy_panic_threshold: int | None = Field(default=None, ge=0, le=100)
    detectors: Detectors | None = None


class CircuitBreakerConf(MeshModel):
    connection_limits: ConnectionLimits | None = None
    outlier_detection: OutlierDetection | None = None


class MeshCircuitBreakerSpec(PolicySpec):
    to: list[ToItem[CircuitBreakerConf]] = []
    from_: list[FromItem[CircuitBreakerConf]] = Field(default=[], alias="from")
