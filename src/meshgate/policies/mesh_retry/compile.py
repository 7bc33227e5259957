"""MeshRetry → ``Service.retry`` (HTTP) and ``Service.retries`` (connection attempts).

HTTP: ``numRetries`` (default 5), ``retryOn`` (default ``5xx``: any 5xx or no response),
``perTryTimeout``, ``backOff`` (default 25ms..250ms) become a ``RetryPolicy``; ``retries``
(Kong's connect retries) gets ``numRetries`` as well.  TCP: ``maxConnectAttempt`` N gives
``retries`` N-1.
"""

from __future__ import annotations

from meshgate import snapshot
from meshgate.policies.mesh_retry.api import RetryConf
from meshgate.resources.mesh.base import duration_ms

DEFAULT_NUM_RETRIES = 5
DEFAULT_RETRY_ON = ("5xx",)
_CONDITIONS = {
    "5xx": "5xx",
    "GatewayError": "gateway-error",
    "Reset": "reset",
    "Retriable4xx": "retriable-4xx",
    "ConnectFailure": "connect-failure",
    "EnvoyRatelimited": "envoy-ratelimited",
    "RefusedStream": "refused-stream",
    "Http3PostConnectFailure": "http3-post-connect-failure",
}


def apply_to_service(service: snapshot.Service, conf: RetryConf) -> snapshot.Service:
    """``service`` with the merged retry configuration applied."""
    if service.protocol in ("tcp", "tls"):
        if conf.tcp is None or conf.tcp.max_connect_attempt is None:
            return service
        return service.model_copy(update={"retries": conf.tcp.max_connect_attempt - 1})
    http = conf.http
    if http is None:
        return service
    num_retries = DEFAULT_NUM_RETRIES if http.num_retries is None else http.num_retries
    retry_on = http.retry_on if http.retry_on is not None else list(DEFAULT_RETRY_ON)
    back_off = http.back_off
    policy = snapshot.RetryPolicy(
        num_retries=num_retries,
        retry_on=tuple(_CONDITIONS.get(name, name) for name in retry_on if not name.isdigit()),
        retriable_status_codes=tuple(int(name) for name in retry_on if name.isdigit()),
        per_try_timeout_ms=duration_ms(http.per_try_timeout) or None
        if http.per_try_timeout is not None
        else None,
        backoff_base_ms=duration_ms(back_off.base_interval)
        if back_off is not None and back_off.base_interval is not None
        else 25,
        backoff_max_ms=duration_ms(back_off.max_interval)
        if back_off is not None and back_off.max_interval is not None
        else 250,
    )
    return service.model_copy(update={"retries": num_retries, "retry": policy})
