"""MeshCircuitBreaker → ``Cluster.limits`` and passive health checks (outlier detection).

Connection limits map one to one (``maxConnectionPools`` is not enforced).  Outlier
detection uses the engine's passive health checker: an endpoint failing ``consecutive``
times in a row is taken out for ``baseEjectionTime`` (default 30s), then tried again:

* ``totalFailures``: 5xx responses, connection failures and timeouts;
* ``gatewayFailures``: 502/503/504, connection failures and timeouts;
* ``localOriginFailures``: connection failures and timeouts only.

The most inclusive detector given wins.  ``interval``, ``maxEjectionPercent``,
``successRate`` and ``failurePercentage`` are not enforced yet.
"""

from __future__ import annotations

from meshgate import snapshot
from meshgate.policies.mesh_circuit_breaker.api import CircuitBreakerConf, OutlierDetection
from meshgate.resources.mesh.base import duration_ms

DEFAULT_BASE_EJECTION = "30s"


def apply_to_cluster(
    cluster: snapshot.Cluster, conf: CircuitBreakerConf, *, http: bool
) -> snapshot.Cluster:
    """``cluster`` with the merged limits and outlier detection applied."""
    update: dict[str, object] = {}
    limits = conf.connection_limits
    if limits is not None:
        update["limits"] = snapshot.ConnectionLimits(
            max_connections=limits.max_connections,
            max_pending_requests=limits.max_pending_requests,
            max_requests=limits.max_requests,
            max_retries=limits.max_retries,
        )
    passive = _passive(conf.outlier_detection, http=http)
    if passive is not None:
        update["healthchecks"] = cluster.healthchecks.model_copy(update={"passive": passive})
    return cluster.model_copy(update=update) if update else cluster


def _passive(outlier: OutlierDetection | None, *, http: bool) -> snapshot.PassiveHealthcheck | None:
    if outlier is None or outlier.disabled or outlier.detectors is None:
        return None
    detectors = outlier.detectors
    statuses: tuple[int, ...]
    if detectors.total_failures is not None and detectors.total_failures.consecutive:
        count, statuses = detectors.total_failures.consecutive, tuple(range(500, 600))
    elif detectors.gateway_failures is not None and detectors.gateway_failures.consecutive:
        count, statuses = detectors.gateway_failures.consecutive, (502, 503, 504)
    elif (
        detectors.local_origin_failures is not None and detectors.local_origin_failures.consecutive
    ):
        count, statuses = detectors.local_origin_failures.consecutive, ()
    else:
        return None
    use_http = http and bool(statuses)
    return snapshot.PassiveHealthcheck(
        type="http" if http else "tcp",
        unhealthy=snapshot.PassiveUnhealthy(
            http_statuses=statuses if use_http else (),
            http_failures=count if use_http else 0,
            tcp_failures=count,
            timeouts=count,
        ),
        recovery_after=duration_ms(outlier.base_ejection_time or DEFAULT_BASE_EJECTION) / 1000,
    )
