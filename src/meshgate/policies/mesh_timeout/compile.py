"""MeshTimeout → ``Service`` timeouts (outbound destination, or the inbound's local app).

* ``connectionTimeout`` → ``connect_timeout_ms``;
* ``idleTimeout`` → ``idle_timeout_ms`` (connections with no traffic are closed); for TCP
  services also ``read_timeout_ms``/``write_timeout_ms``;
* ``http.requestTimeout`` → ``request_timeout_ms`` (whole exchange, all tries);
* ``http.streamIdleTimeout`` → ``read_timeout_ms`` and ``write_timeout_ms`` (no bytes for that
  long on an exchange).

A ``0`` duration disables the limit (None, or Kong's largest timeout for the Kong fields).
``maxStreamDuration``, ``maxConnectionDuration`` and ``requestHeadersTimeout`` are accepted
and shown by ``inspect`` but not enforced yet.
"""

from __future__ import annotations

from typing import Any

from meshgate import snapshot
from meshgate.policies.mesh_timeout.api import TimeoutConf
from meshgate.resources.mesh.base import duration_ms

KONG_MAX_TIMEOUT_MS = 2_147_483_646


def apply_to_service(service: snapshot.Service, conf: TimeoutConf) -> snapshot.Service:
    """``service`` with the merged timeouts applied (fields the conf leaves out are kept)."""
    update: dict[str, Any] = {}
    if conf.connection_timeout is not None:
        update["connect_timeout_ms"] = duration_ms(conf.connection_timeout) or KONG_MAX_TIMEOUT_MS
    if conf.idle_timeout is not None:
        idle_ms = duration_ms(conf.idle_timeout)
        update["idle_timeout_ms"] = idle_ms or None
        if service.protocol in ("tcp", "tls"):
            # a proxied TCP connection's reads and writes wait as long as it may stay idle
            update["read_timeout_ms"] = update["write_timeout_ms"] = idle_ms or KONG_MAX_TIMEOUT_MS
    http = conf.http
    if http is not None and service.protocol in ("http", "https"):
        if http.request_timeout is not None:
            update["request_timeout_ms"] = duration_ms(http.request_timeout) or None
        if http.stream_idle_timeout is not None:
            idle = duration_ms(http.stream_idle_timeout) or KONG_MAX_TIMEOUT_MS
            update["read_timeout_ms"] = idle
            update["write_timeout_ms"] = idle
    return service.model_copy(update=update) if update else service
