"""``ConnectQueues``: requests that found no idle upstream connection wait, per pool key, in a
FIFO for the first connection that becomes free instead of each opening its own.

The rules (see also ``pool``'s docstring):

* A request that finds no idle connection joins its key's queue.  It starts a connect only
  when the connects in progress do not cover the queue (``connecting < waiters``) and fewer
  than ``cap`` are in progress (``ProxySettings.upstream_connecting_max``, default 4).  A
  connect that succeeds starts no other: a burst that arrives at once costs ``cap``
  handshakes, not one per request.  (Holding back later arrivals too while released
  connections serve the queue saved handshakes but cost the mesh bench's mTLS pair ~60 ms
  of p99: a backlog drains faster over more connections.)  A connection closed after its
  response (not reusable) is replaced by a connect if the waiters lack one.
* A connection that becomes free goes to the head waiter: a new one as soon as it is
  connected, a released keep-alive one straight from ``release`` (never through the idle
  list).  Connections that cannot serve again (closed, upgraded, failed, retired) are closed
  by ``release`` before this point and never handed over.
* A connect that fails fails the head waiter, which handles it as its own failed connect
  (balancer report, retry elsewhere or 502/504: the semantics of one request, one connect
  attempt), and a new connect starts for the others if they lack one; a target that keeps
  failing thus fails each waiter about as soon as its own connect would have, and never
  later than its connect timeout (next rule).
* Every ``patience`` seconds (default 50 ms) while a queue has waiters, a tick: waiters that
  waited their service's connect timeout (plus one patience, so that a connect's own timeout
  comes first) fail as a connect timeout would have; if the head has waited ``patience``
  and no released connection served the queue since the last tick, the key's cap doubles
  (slow connects or long requests: more connections are the cure) until the queue empties;
  while released connections keep serving it, the queue is only CPU-bound or bursty, and
  more handshakes would make that worse.  Connects missing under the cap start.
* A waiter that stops waiting (client gone, request or try timeout, retried) leaves at once.

Only the slow path (no idle connection) touches this; ``release`` checks one counter.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, Protocol

from meshgate.proxy.http.clock import monotonic

if TYPE_CHECKING:
    from meshgate.proxy.balancer import Outcome
    from meshgate.proxy.http.pool import PoolKey, UpstreamPools
    from meshgate.proxy.http.upstream import UpstreamProtocol

MAX_CAP = 1 << 16


class Waiter(Protocol):
    """What a queued request (an ``Exchange``) does for its queue."""

    def wait_limit(self) -> float:
        """Seconds it may wait for a connection (its connect timeout)."""
        ...

    def pool_ready(self, conn: UpstreamProtocol, reused: bool) -> None:
        """Its connection: send the request (``reused``: a released keep-alive one)."""
        ...

    def pool_failed(self, outcome: Outcome, reason: str) -> None:
        """A connect for its key failed (``outcome`` "timeout" or "tcp_error")."""
        ...

    def pool_connect(self, key: PoolKey) -> None:
        """Start a connect for the queue (``connect_started``), or leave the queue."""
        ...


class ConnectQueue:
    """One key's waiters (oldest first, with the time each joined) and connects in progress."""

    __slots__ = ("cap", "connecting", "joined", "recycled", "timer", "waiters")

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.connecting = 0
        self.recycled = False  # a released connection served a waiter since the last tick
        self.waiters: deque[Waiter] = deque()
        self.joined: deque[float] = deque()
        self.timer: asyncio.TimerHandle | None = None


class ConnectQueues:
    """The connect queues of one ``UpstreamPools``."""

    __slots__ = ("cap", "handed_over", "patience", "pools", "queues", "waiting")

    def __init__(self, pools: UpstreamPools, cap: int, patience: float) -> None:
        self.pools = pools
        self.cap = max(1, cap)
        self.patience = patience
        self.queues: dict[PoolKey, ConnectQueue] = {}
        self.waiting = 0  # waiters in all queues: ``release`` looks here first
        self.handed_over = 0  # released connections given straight to a waiter (stats, tests)

    # ------------------------------------------------------------------ waiters

    def join(self, key: PoolKey, waiter: Waiter) -> bool:
        """Queue ``waiter``; True when it should just wait, False when it must start a
        connect (``Waiter.pool_connect``'s work) for the queue."""
        queue = self.queues.get(key)
        if queue is None:
            queue = self.queues[key] = ConnectQueue(self.cap)
        now = monotonic()
        queue.waiters.append(waiter)
        queue.joined.append(now)
        self.waiting += 1
        if queue.timer is None:
            queue.timer = asyncio.get_running_loop().call_later(self.patience, self._tick, key)
        return queue.connecting >= len(queue.waiters) or queue.connecting >= queue.cap

    def leave(self, key: PoolKey, waiter: Waiter) -> None:
        """``waiter`` stops waiting (its request ended, timed out or moves on)."""
        queue = self.queues.get(key)
        if queue is None:
            return
        try:
            index = queue.waiters.index(waiter)
        except ValueError:
            return
        del queue.waiters[index]
        del queue.joined[index]
        self.waiting -= 1
        self._drop_if_unused(key, queue)

    def connect_started(self, key: PoolKey) -> None:
        queue = self.queues.get(key)
        if queue is None:
            queue = self.queues[key] = ConnectQueue(self.cap)
        queue.connecting += 1

    # ------------------------------------------------------------------ connections

    def hand_over(self, conn: UpstreamProtocol) -> bool:
        """Give a released reusable ``conn`` to its key's head waiter; False if none waits."""
        queue = self.queues.get(conn.key)
        if queue is None or not queue.waiters:
            return False
        self.handed_over += 1
        queue.recycled = True
        self._serve(conn.key, queue, conn, True)
        return True

    def connected(self, conn: UpstreamProtocol) -> None:
        """A connect for the queue succeeded: the head waiter gets ``conn`` (else it idles)."""
        key = conn.key
        queue = self.queues.get(key)
        if queue is not None:
            queue.connecting -= 1
        if queue is None or not queue.waiters:
            if queue is not None:
                self._drop_if_unused(key, queue)
            self.pools.release(conn, True)
            return
        self._serve(key, queue, conn, False)

    def connect_failed(self, key: PoolKey, outcome: Outcome, reason: str) -> None:
        """A connect for the queue failed: the head waiter fails as on its own failed connect
        (unless the remaining connects still cover everyone); the others get a new connect."""
        queue = self.queues.get(key)
        if queue is None:
            return
        queue.connecting -= 1
        if len(queue.waiters) <= queue.connecting:
            self._drop_if_unused(key, queue)
            return
        waiter = queue.waiters.popleft()
        queue.joined.popleft()
        self.waiting -= 1
        self._drop_if_unused(key, queue)
        self.closed(key)
        waiter.pool_failed(outcome, reason)  # it may retry, and queue again

    def closed(self, key: PoolKey) -> None:
        """A connection of ``key`` ended instead of being handed over: the waiters may now
        lack the connects to cover them."""
        if key in self.queues:
            self._refill(key)

    def connect_abandoned(self, key: PoolKey) -> None:
        """A connect for the queue ended without a result (its task was cancelled)."""
        queue = self.queues.get(key)
        if queue is not None:
            queue.connecting -= 1
            self._drop_if_unused(key, queue)

    # ------------------------------------------------------------------ internals

    def _serve(
        self, key: PoolKey, queue: ConnectQueue, conn: UpstreamProtocol, reused: bool
    ) -> None:
        waiter = queue.waiters.popleft()
        queue.joined.popleft()
        self.waiting -= 1
        conn.deadline = 0.0
        self._drop_if_unused(key, queue)
        waiter.pool_ready(conn, reused)

    def _refill(self, key: PoolKey) -> None:
        """Start the connects the queue lacks (at most one per uncovered waiter, under the cap)."""
        for _ in range(len(self.queues[key].waiters) if key in self.queues else 0):
            queue = self.queues.get(key)
            if queue is None:
                return
            covered = queue.connecting
            if covered >= len(queue.waiters) or covered >= queue.cap:
                return
            queue.waiters[covered].pool_connect(key)  # connects, or leaves the queue

    def _tick(self, key: PoolKey) -> None:
        queue = self.queues.get(key)
        if queue is None:
            return
        queue.timer = None
        now = monotonic()
        expired = [  # one patience of grace: a connect's own timeout should come first
            waiter
            for waiter, joined in zip(queue.waiters, queue.joined, strict=True)
            if now - joined >= waiter.wait_limit() + self.patience
        ]
        for waiter in expired:
            self.leave(key, waiter)
        for waiter in expired:
            waiter.pool_failed("timeout", "upstream-connect-timeout")
        queue = self.queues.get(key)
        if queue is None or not queue.waiters:
            return
        if now - queue.joined[0] >= self.patience and not queue.recycled:
            queue.cap = min(queue.cap * 2, MAX_CAP)
        queue.recycled = False
        self._refill(key)
        queue = self.queues.get(key)
        if queue is not None and queue.waiters and queue.timer is None:
            queue.timer = asyncio.get_running_loop().call_later(self.patience, self._tick, key)

    def _drop_if_unused(self, key: PoolKey, queue: ConnectQueue) -> None:
        if queue.waiters:
            return
        queue.cap = self.cap
        if queue.connecting <= 0 and self.queues.get(key) is queue:
            del self.queues[key]
            if queue.timer is not None:
                queue.timer.cancel()
                queue.timer = None
