"""Access records: one small object per finished request, and the default JSON-lines sink.

Records are built only after the response is done, and only when someone listens: a
callback in ``ProxySettings.on_access`` or the ``meshgate.access`` logger enabled at INFO.
"""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from meshgate.proxy.http.exchange import Exchange
    from meshgate.proxy.http.request import ProxyRequest

access_logger = logging.getLogger("meshgate.access")


class AccessRecord:
    """What happened to one request; latencies are milliseconds."""

    __slots__ = (
        "bytes_sent",
        "client_ip",
        "latency_proxy_ms",
        "latency_total_ms",
        "latency_upstream_ms",
        "method",
        "path",
        "reason",
        "route_id",
        "route_name",
        "service_name",
        "status",
        "time",
        "upstream",
    )

    def __init__(
        self,
        *,
        time: float,
        client_ip: str,
        method: str,
        path: str,
        status: int,
        bytes_sent: int,
        upstream: str,
        route_id: str,
        route_name: str,
        service_name: str,
        latency_total_ms: float,
        latency_upstream_ms: float,
        latency_proxy_ms: float,
        reason: str,
    ) -> None:
        self.time = time  # epoch seconds at which the request started
        self.client_ip = client_ip
        self.method = method
        self.path = path
        self.status = status  # 0: no response could be sent (connection aborted)
        self.bytes_sent = bytes_sent  # response bytes written to the client, head included
        self.upstream = upstream  # "address:port" of the last target tried, or ""
        self.route_id = route_id
        self.route_name = route_name
        self.service_name = service_name
        self.latency_total_ms = latency_total_ms
        self.latency_upstream_ms = latency_upstream_ms
        self.latency_proxy_ms = latency_proxy_ms
        self.reason = reason  # the meshgate-error reason, "" when none

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}

    def __repr__(self) -> str:
        return f"AccessRecord({self.as_dict()!r})"


def build_record(
    client_ip: str,
    req: ProxyRequest,
    exchange: Exchange | None,
    status: int,
    bytes_sent: int,
    reason: str,
    now: float,
) -> AccessRecord:
    """The record of a finished request (``now``: the engine's monotonic clock)."""
    total = now - req.started_at
    upstream_ms = proxy_ms = 0.0
    upstream = route_id = route_name = service_name = ""
    if exchange is not None:
        if exchange.t_head and exchange.t_sent:
            upstream_ms = (exchange.t_head - exchange.t_sent) * 1000
        proxy_ms = ((exchange.t_sent or now) - req.started_at) * 1000
        target = exchange.target or (exchange.tried[-1] if exchange.tried else None)
        if target is not None:
            upstream = f"{target.address}:{target.port}"
        route_id = exchange.route.route.id
        route_name = exchange.route.route.name or ""
        service_name = exchange.service.service.name or exchange.service.service.id
    else:
        proxy_ms = total * 1000
    return AccessRecord(
        time=time.time() - total,
        client_ip=client_ip,
        method=req.method.decode("latin-1"),
        path=req.raw_path.decode("latin-1") if req.raw_path else req.url.decode("latin-1"),
        status=status,
        bytes_sent=bytes_sent,
        upstream=upstream,
        route_id=route_id,
        route_name=route_name,
        service_name=service_name,
        latency_total_ms=total * 1000,
        latency_upstream_ms=upstream_ms,
        latency_proxy_ms=proxy_ms,
        reason=reason,
    )


def log_json(record: AccessRecord) -> None:
    """The default sink: one JSON line on the ``meshgate.access`` logger."""
    access_logger.info(json.dumps(record.as_dict(), separators=(",", ":")))
