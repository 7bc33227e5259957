"""A connection released while its reading is paused (its client was slow as the response
ended) reads again before it serves anybody: idle or handed to a waiter."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from meshgate.proxy.http.clock import Sweeper
from meshgate.proxy.http.pool import UpstreamPools
from meshgate.proxy.http.upstream import UpstreamProtocol


class Transport:
    def __init__(self) -> None:
        self.reading = False  # paused when the response ended

    def is_reading(self) -> bool:
        return self.reading

    def resume_reading(self) -> None:
        self.reading = True

    def is_closing(self) -> bool:
        return False


class Conn:
    def __init__(self) -> None:
        self.transport = Transport()
        self.key = ("127.0.0.1", 80, 0, None)
        self.exchange: Any = object()
        self.read_timeout = 5.0
        self.closed = False
        self.requests = 1
        self.deadline = 0.0


def test_a_paused_connection_is_resumed_when_released() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        pools = UpstreamPools(Sweeper(loop, 1.0), max_idle=8, idle_timeout=60.0,
                              max_requests=100, high_water=65536, low_water=16384)  # fmt: skip
        conn = Conn()
        pools.release(cast(UpstreamProtocol, conn), True)
        assert conn.transport.reading
        assert pools.acquire(conn.key) is cast(UpstreamProtocol, conn)

    asyncio.run(scenario())
