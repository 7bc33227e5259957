"""``HttpEngine``: what all client connections of one process share — config cell, settings,
upstream pools, the timeout sweeper, the live connections and the access-log sink.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from meshgate.proxy.http.accesslog import AccessRecord, access_logger, log_json
from meshgate.proxy.http.clock import Sweeper
from meshgate.proxy.http.pool import UpstreamPools
from meshgate.proxy.http.write_batch import WriteBatch

if TYPE_CHECKING:
    from meshgate.proxy.compiled import RuntimeState
    from meshgate.proxy.http.server import HttpProxyProtocol
    from meshgate.proxy.http.settings import ProxySettings


class HttpEngine:
    """Shared by every listener started for one ``RuntimeState`` in this process."""

    __slots__ = ("batch", "clients", "loop", "pools", "servers", "settings", "state", "sweeper")

    def __init__(
        self, state: RuntimeState, settings: ProxySettings, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.state = state
        self.settings = settings
        self.loop = loop
        self.sweeper = Sweeper(loop, settings.timer_resolution)
        self.batch = WriteBatch(loop) if settings.write_batching else None
        self.pools = UpstreamPools(
            self.sweeper,
            max_idle=settings.upstream_keepalive_pool_size,
            idle_timeout=settings.upstream_keepalive_idle_timeout,
            max_requests=settings.upstream_keepalive_max_requests,
            high_water=settings.high_water,
            low_water=settings.low_water,
            connecting_max=settings.upstream_connecting_max,
            connect_patience=settings.upstream_connect_patience,
            batch=self.batch,
        )
        self.clients: set[HttpProxyProtocol] = set()
        self.servers: list[asyncio.Server] = []

    @property
    def draining(self) -> bool:
        return self.state.draining

    def access_sink(self) -> Callable[[AccessRecord], None] | None:
        """Where access records go, or None when nobody listens (then none are built)."""
        sink = self.settings.on_access
        if sink is not None:
            return sink
        if access_logger.isEnabledFor(logging.INFO):
            return log_json
        return None
