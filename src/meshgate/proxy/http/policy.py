"""Mesh HTTP policies as the hot path uses them, compiled once per snapshot.

``HeaderEdit`` (a route's request/response header modifier), ``WeightedChoice`` (a route's
traffic split), ``RetryPlan`` (a service's retry policy), ``LimitState`` (a cluster's
circuit-breaker counters, per process) and ``ServicePolicy`` (everything of a service that is
not Kong's).  Routes and services without them carry None: the engine pays one attribute
check.  ``LimitedUpstream`` is the upstream connection of a limited cluster (it gives its
slot back when it closes) and ``Discard`` swallows the body of a response that is retried.
"""

from __future__ import annotations

import asyncio
import bisect
import random
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from meshgate.proxy.http.heads import CRLF, SEP
from meshgate.proxy.http.upstream import UpstreamProtocol

if TYPE_CHECKING:
    from meshgate.proxy.compiled import CompiledService
    from meshgate.proxy.http.exchange import Exchange
    from meshgate.proxy.http.pool import PoolKey, UpstreamPools

# Framing and connection management stay the engine's: modifiers never touch these.
PROTECTED_HEADERS = frozenset(
    {b"content-length", b"transfer-encoding", b"connection", b"keep-alive", b"upgrade", b"te"}
)
_random = random.random
_UNLIMITED = 1 << 62


class HeaderEdit:
    """A compiled ``HeaderModifier``: drop some names, then append ready lines."""

    __slots__ = ("append", "host", "remove")

    def __init__(
        self,
        remove: Sequence[str],
        set_: Sequence[tuple[str, str]],
        add: Sequence[tuple[str, str]],
        *,
        request: bool,
    ) -> None:
        names = {n.strip().lower().encode("latin-1") for n in remove}
        names.update(n.strip().lower().encode("latin-1") for n, _ in set_)
        self.host: bytes | None = None  # a request's ``set`` Host replaces the Host sent
        lines: list[bytes] = []
        for name, value in (*set_, *add):
            raw = name.strip().encode("latin-1")
            if raw.lower() in PROTECTED_HEADERS:
                continue
            encoded = value.encode("latin-1", "replace")
            if request and raw.lower() == b"host":
                self.host = encoded
                continue
            lines.append(raw + SEP + encoded + CRLF)
        self.remove = frozenset(names - PROTECTED_HEADERS - {b"host"})
        self.append = tuple(lines)

    def apply(self, lines: list[bytes]) -> list[bytes]:
        """``lines`` (``Name: value\\r\\n`` each) edited; a new list."""
        remove = self.remove
        if remove:
            out = [ln for ln in lines if ln[: ln.find(b":")].strip().lower() not in remove]
        else:
            out = list(lines)
        out.extend(self.append)
        return out


class WeightedChoice:
    """A traffic split: ``pick`` returns a service with probability weight / total."""

    __slots__ = ("cumulative", "services", "total")

    def __init__(self, weighted: Sequence[tuple[CompiledService, int]]) -> None:
        kept = [(svc, w) for svc, w in weighted if w > 0]
        self.services = tuple(svc for svc, _ in kept)
        cumulative: list[int] = []
        total = 0
        for _, weight in kept:
            total += weight
            cumulative.append(total)
        self.cumulative = cumulative
        self.total = total

    def pick(self) -> CompiledService | None:
        if not self.total:
            return None
        return self.services[bisect.bisect_right(self.cumulative, _random() * self.total)]


class RetryPlan:
    """A compiled ``RetryPolicy``: what is retried, how often, how long each try may take."""

    __slots__ = (
        "backoff_base",
        "backoff_max",
        "num_retries",
        "on_connect_failure",
        "on_reset",
        "per_try_timeout",
        "statuses",
    )

    def __init__(
        self,
        num_retries: int,
        retry_on: Sequence[str],
        statuses: Sequence[int],
        per_try_timeout_ms: int | None,
        backoff_base_ms: int,
        backoff_max_ms: int,
    ) -> None:
        kinds = set(retry_on)
        self.num_retries = num_retries
        self.on_reset = bool(kinds & {"5xx", "gateway-error", "reset", "refused-stream"})
        self.on_connect_failure = self.on_reset or "connect-failure" in kinds
        retried = set(statuses)
        if "5xx" in kinds:
            retried.update(range(500, 600))
        if "gateway-error" in kinds:
            retried.update((502, 503, 504))
        if "retriable-4xx" in kinds:
            retried.add(409)
        self.statuses = frozenset(retried)
        self.per_try_timeout = None if per_try_timeout_ms is None else per_try_timeout_ms / 1000
        self.backoff_base = backoff_base_ms / 1000
        self.backoff_max = backoff_max_ms / 1000

    def backoff(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1, 2, ...): full jitter."""
        ceiling = min(self.backoff_max, self.backoff_base * (1 << min(retry - 1, 30)))
        return _random() * ceiling


class LimitState:
    """One cluster's circuit-breaker counters in this process (None limits = unlimited)."""

    __slots__ = (
        "connections",
        "factory",
        "max_connections",
        "max_pending",
        "max_requests",
        "max_retries",
        "open",
        "pending",
        "requests",
        "retries",
        "wake_scheduled",
    )

    def __init__(
        self,
        max_connections: int | None,
        max_pending: int | None,
        max_requests: int | None,
        max_retries: int | None,
    ) -> None:
        self.max_connections = _UNLIMITED if max_connections is None else max_connections
        self.max_pending = _UNLIMITED if max_pending is None else max_pending
        self.max_requests = _UNLIMITED if max_requests is None else max_requests
        self.max_retries = _UNLIMITED if max_retries is None else max_retries
        self.connections = 0  # open (or opening) upstream connections
        self.requests = 0  # requests in flight
        self.retries = 0  # requests in flight that are being retried
        self.pending: deque[Exchange] = deque()  # waiting for a connection
        self.open: set[LimitedUpstream] = set()
        self.wake_scheduled = False
        self.factory = limited_factory(self)  # makes this cluster's upstream connections

    def evict_idle(self, pools: UpstreamPools) -> bool:
        """Close one idle pooled connection of this cluster to make room; False if none."""
        for conn in self.open:
            if conn.exchange is None and not conn.closed and conn.tunnel is None:
                pools.forget(conn)
                conn.close()
                return True
        return False

    def slot_freed(self) -> None:
        """A connection closed or went idle: let the first waiter try again (soon, not
        inside the callback that freed it)."""
        if self.pending and not self.wake_scheduled:
            self.wake_scheduled = True
            asyncio.get_running_loop().call_soon(self._wake)

    def _wake(self) -> None:
        self.wake_scheduled = False
        pending = self.pending
        while pending:
            exchange = pending.popleft()
            if not exchange.done:
                exchange.connection_available()
                return


class LimitedUpstream(UpstreamProtocol):
    """An upstream connection counted against its cluster's ``max_connections``.

    The connect reserves the slot; the connection takes it over once established (a
    connect that fails gives it back itself) and frees it when it closes.
    """

    __slots__ = ("limit", "reserved")

    def __init__(self, pools: UpstreamPools, key: PoolKey, limit: LimitState) -> None:
        super().__init__(pools, key)
        self.reserved = limit
        self.limit: LimitState | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.limit = limit = self.reserved
        limit.open.add(self)

    def _uncount(self) -> None:
        limit = self.limit
        if limit is not None:
            self.limit = None
            limit.connections -= 1
            limit.open.discard(self)
            limit.slot_freed()

    def connection_lost(self, exc: Exception | None) -> None:
        self._uncount()
        super().connection_lost(exc)

    def close(self) -> None:
        self._uncount()
        super().close()

    def abort(self) -> None:
        self._uncount()
        super().abort()


def limited_factory(
    limit: LimitState,
) -> Callable[[UpstreamPools, PoolKey], UpstreamProtocol]:
    def make(pools: UpstreamPools, key: PoolKey) -> UpstreamProtocol:
        return LimitedUpstream(pools, key, limit)

    return make


class ServicePolicy:
    """A service's mesh settings: retries, whole-request and idle timeouts, its cluster's
    limits."""

    __slots__ = ("idle_timeout", "limits", "request_timeout", "retry")

    def __init__(
        self,
        retry: RetryPlan | None,
        request_timeout: float | None,
        idle_timeout: float | None,
        limits: LimitState | None,
    ) -> None:
        self.retry = retry
        self.request_timeout = request_timeout
        self.idle_timeout = idle_timeout
        self.limits = limits
