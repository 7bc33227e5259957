"""``ProxySettings``: node-level limits, timeouts and switches of the HTTP proxy engine.

Durations are seconds.  Defaults follow Kong/nginx where Kong has one (client header/body
timeouts and keep-alive 60 s, upstream keep-alive idle 60 s, pool 512); body size 0 = no
limit, like Kong's ``client_max_body_size``-off default.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from meshgate.proxy.http.accesslog import AccessRecord

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(slots=True, frozen=True)
class ProxySettings:
    """Everything about the engine that is not per route/service."""

    max_header_bytes: int = 32 * 1024  # request line + headers; beyond: 431
    max_url_bytes: int = 8 * 1024  # request target; beyond: 414
    max_body_bytes: int = 0  # request body; 0 = unlimited; beyond: 413
    client_header_timeout: float = 60.0  # to receive a whole request head; then 408
    client_body_timeout: float = 60.0  # between two reads of a request body
    keepalive_timeout: float = 60.0  # idle client connection between requests
    send_timeout: float = 60.0  # a client that reads nothing of a response this long is dropped
    upstream_keepalive_pool_size: int = 512  # idle connections kept per upstream target
    upstream_keepalive_idle_timeout: float = 60.0
    upstream_keepalive_max_requests: int = 10000
    # connects in progress per upstream target before requests queue for a free connection
    upstream_connecting_max: int = 4
    # the oldest queued request waited this long: that target's connect cap doubles
    upstream_connect_patience: float = 0.05
    high_water: int = 64 * 1024  # write-buffer size that pauses the other side's reading
    low_water: int = 16 * 1024
    server_tokens: bool = True  # Server header on our own responses, Via on proxied ones
    # peers (IPs or CIDRs) whose X-Forwarded-* / X-Real-IP headers are believed
    trust_forwarded_from: tuple[str, ...] = ()
    timer_resolution: float = 0.5  # how often timeouts are checked
    write_batching: bool = True  # a loop round's writes go out together at its end (write_batch)
    drain_grace: float = 0.0  # extra time before idle keep-alive connections are closed in drain
    # per-request access record sink; None = JSON lines to the ``meshgate.access`` logger
    on_access: Callable[[AccessRecord], None] | None = None
    trusted_networks: tuple[IPNetwork, ...] = field(init=False, default=())

    def __post_init__(self) -> None:
        networks = tuple(ipaddress.ip_network(n, strict=False) for n in self.trust_forwarded_from)
        object.__setattr__(self, "trusted_networks", networks)

    def is_trusted(self, ip: str) -> bool:
        """Whether forwarding headers from ``ip`` are believed."""
        if not self.trusted_networks:
            return False
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(address in net for net in self.trusted_networks)
