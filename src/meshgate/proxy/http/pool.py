"""Upstream connection pools: idle keep-alive connections per target key, reused LIFO.

A key is (address, port, id of the TLS context or 0, SNI name or None).  Bookkeeping is
synchronous; only ``connect`` awaits.  Idle connections carry an idle deadline swept by
the engine's ``Sweeper``; a connection that served ``max_requests`` is retired.

Connect coalescing (``pool_waiters.ConnectQueues``, ``queues``): a request that finds no
idle connection waits in its key's FIFO queue and starts a connect only when the connects in
progress are fewer than the waiters and than the key's cap (``upstream_connecting_max``,
default 4; it doubles each ``upstream_connect_patience``, 50 ms, that the oldest waiter has
waited, and resets once nobody waits).  Whatever connection frees up first — a new one or
one released after a response — goes to the head waiter; a failed connect fails the head
waiter (it retries or answers 502/504 as for its own connect) and is replaced for the
others; a waiter never waits much longer than its connect timeout.  ``acquire`` is
unchanged and ``release`` looks at one counter: the idle-connection path costs nothing more.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable

from meshgate.proxy.http.clock import Sweeper
from meshgate.proxy.http.pool_waiters import ConnectQueues
from meshgate.proxy.http.upstream import UpstreamProtocol
from meshgate.proxy.http.write_batch import WriteBatch

PoolKey = tuple[str, int, int, str | None]


def pool_key(address: str, port: int, context: ssl.SSLContext | None, sni: str | None) -> PoolKey:
    return (address, port, 0 if context is None else id(context), sni)


class UpstreamPools:
    """All upstream pools of one engine (one per worker process)."""

    __slots__ = (
        "batch",
        "high_water",
        "idle",
        "idle_timeout",
        "low_water",
        "max_idle",
        "max_requests",
        "opened",
        "queues",
        "sweeper",
    )

    def __init__(
        self,
        sweeper: Sweeper,
        *,
        max_idle: int,
        idle_timeout: float,
        max_requests: int,
        high_water: int,
        low_water: int,
        connecting_max: int = 4,
        connect_patience: float = 0.05,
        batch: WriteBatch | None = None,
    ) -> None:
        self.sweeper = sweeper
        self.batch = batch
        self.max_idle = max_idle
        self.idle_timeout = idle_timeout
        self.max_requests = max_requests
        self.high_water = high_water
        self.low_water = low_water
        self.idle: dict[PoolKey, list[UpstreamProtocol]] = {}
        self.opened = 0  # connections ever opened (for tests and stats)
        self.queues = ConnectQueues(self, connecting_max, connect_patience)

    def acquire(self, key: PoolKey) -> UpstreamProtocol | None:
        """The most recently released idle connection for ``key``, if any."""
        idle = self.idle.get(key)
        while idle:
            conn = idle.pop()
            if not conn.closed and not conn.transport.is_closing():
                conn.deadline = 0.0
                return conn
        return None

    def release(
        self, conn: UpstreamProtocol, reusable: bool, idle_timeout: float | None = None
    ) -> None:
        """Take ``conn`` back after a response; it is closed unless it can serve another.
        ``idle_timeout`` (a service's) shortens how long it may then wait idle."""
        conn.exchange = None
        conn.read_timeout = 0.0
        if (
            not reusable
            or conn.closed
            or conn.requests >= self.max_requests
            or conn.transport.is_closing()
        ):
            conn.close()
            if self.queues.waiting:
                self.queues.closed(conn.key)
            return
        transport = conn.transport
        if not transport.is_reading():  # paused for a slow client as its response ended
            transport.resume_reading()
        if self.queues.waiting and self.queues.hand_over(conn):
            return
        idle = self.idle.get(conn.key)
        if idle is None:
            idle = self.idle[conn.key] = []
        if len(idle) >= self.max_idle:
            conn.close()
            return
        if idle_timeout is not None and idle_timeout < self.idle_timeout:
            conn.deadline = self.sweeper.now + idle_timeout
        else:
            conn.deadline = self.sweeper.now + self.idle_timeout
        idle.append(conn)

    def forget(self, conn: UpstreamProtocol) -> None:
        """Drop a closed idle connection from its pool."""
        idle = self.idle.get(conn.key)
        if idle is not None:
            try:
                idle.remove(conn)
            except ValueError:
                pass
            if not idle:
                del self.idle[conn.key]

    def idle_count(self, key: PoolKey | None = None) -> int:
        if key is not None:
            return len(self.idle.get(key, ()))
        return sum(len(v) for v in self.idle.values())

    async def connect(
        self,
        key: PoolKey,
        connect_timeout: float,
        context: ssl.SSLContext | None,
        sni: str | None,
        factory: Callable[[UpstreamPools, PoolKey], UpstreamProtocol] = UpstreamProtocol,
    ) -> UpstreamProtocol:
        """A new connection to ``key``'s address (TLS when ``context``); raises on failure.
        ``factory`` makes the protocol object (a limited cluster's counts itself)."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(connect_timeout):
            _, proto = await loop.create_connection(
                lambda: factory(self, key),
                key[0],
                key[1],
                ssl=context,
                server_hostname=sni if context is not None else None,
            )
        self.opened += 1
        return proto

    def close_idle(self) -> None:
        for idle in list(self.idle.values()):
            for conn in list(idle):
                conn.close()
        self.idle.clear()
