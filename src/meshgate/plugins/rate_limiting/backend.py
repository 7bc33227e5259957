"""What rate-limiting and response-ratelimiting share besides counting: the counter backend
a ``policy`` selects, and error reports throttled so that a down Redis logs once in a while,
not once per request."""

from __future__ import annotations

import logging
import time

from meshgate.proxy.filters.api import CompileEnv

from .redis_policy import RedisCounters
from .schema import RedisConfig
from .shared_counters import CounterStore, open_node_store

REPORT_EVERY = 10.0  # seconds between two reports of failures


def counter_backend(
    policy: str, redis: RedisConfig, env: CompileEnv
) -> tuple[CounterStore | None, RedisCounters | None]:
    """``(node counter store, None)`` for ``local``, ``(None, Redis counters)`` for ``redis``;
    both are node-wide, shared by every instance of both plugins."""
    if policy == "redis":
        clients = env.node_resource("rate-limiting:redis-clients", dict)
        return None, RedisCounters(redis, clients)
    return env.node_resource("rate-limiting:local-store", open_node_store), None


class ThrottledReports:
    """Logs an error at most every ``REPORT_EVERY`` seconds, with how many were held back."""

    def __init__(self, logger: logging.Logger, prefix: str) -> None:
        self._logger = logger
        self._prefix = prefix
        self._last = 0.0
        self._held = 0

    def report(self, message: str) -> None:
        now = time.monotonic()
        if now - self._last < REPORT_EVERY:
            self._held += 1
            return
        more = f" ({self._held} more since the last report)" if self._held else ""
        self._logger.error("%s: %s%s", self._prefix, message, more)
        self._last, self._held = now, 0
