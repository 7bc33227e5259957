"""MeshHealthCheck → ``Cluster.healthchecks.active`` (Kong's active health checker).

Kuma's defaults fill what the merged conf leaves out: interval 1m, timeout 15s, unhealthy
after 5 failures, healthy after 1 success, HTTP path ``/``, expected status 200.  HTTP
destinations get HTTP checks (``https`` when the mesh has mTLS: the checker must present
the service's client certificate), unless ``http.disabled``; then, and for TCP destinations,
a TCP connect check (unless ``tcp.disabled``).  Any status not expected counts as a failure.
"""

from __future__ import annotations

from meshgate import snapshot
from meshgate.policies.mesh_health_check.api import HealthCheckConf
from meshgate.resources.mesh.base import duration_ms

DEFAULT_INTERVAL = "1m"
DEFAULT_TIMEOUT = "15s"
DEFAULT_UNHEALTHY = 5
DEFAULT_HEALTHY = 1


def apply_to_cluster(
    cluster: snapshot.Cluster, conf: HealthCheckConf, *, http: bool, mtls: bool
) -> snapshot.Cluster:
    """``cluster`` with active checks from the merged conf (unchanged if both are disabled)."""
    use_http = http and not (conf.http is not None and conf.http.disabled)
    if not use_http and conf.tcp is not None and conf.tcp.disabled:
        return cluster
    interval = duration_ms(conf.interval or DEFAULT_INTERVAL) / 1000
    unhealthy = conf.unhealthy_threshold or DEFAULT_UNHEALTHY
    expected = tuple(conf.http.expected_statuses or ()) if conf.http is not None else ()
    expected = expected or (200,)
    path = (conf.http.path if conf.http is not None else None) or "/"
    check_type: snapshot.CheckType = ("https" if mtls else "http") if use_http else "tcp"
    active = snapshot.ActiveHealthcheck(
        type=check_type,
        timeout=duration_ms(conf.timeout or DEFAULT_TIMEOUT) / 1000,
        http_path=path,
        https_verify_certificate=mtls,
        healthy=snapshot.ActiveHealthy(
            interval=interval,
            successes=conf.healthy_threshold or DEFAULT_HEALTHY,
            http_statuses=expected if use_http else snapshot.ActiveHealthy().http_statuses,
        ),
        unhealthy=snapshot.ActiveUnhealthy(
            interval=interval,
            http_failures=unhealthy if use_http else 0,
            tcp_failures=unhealthy,
            timeouts=unhealthy,
            http_statuses=tuple(code for code in range(300, 600) if code not in expected)
            if use_http
            else snapshot.ActiveUnhealthy().http_statuses,
        ),
    )
    checks = cluster.healthchecks.model_copy(update={"active": active})
    return cluster.model_copy(update={"healthchecks": checks})
