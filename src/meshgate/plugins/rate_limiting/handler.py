"""rate-limiting: count requests per identifier and period; over a limit → 429 (Kong's PRIORITY
910, headers and semantics).

Per request (access): pick the identifier (``limit_by``, falling back to the client IP), then
one *check-and-count* across every configured period — in the node's shared counter file
(``local``: exact across the node's workers, see ``shared_counters``) or in Redis (``redis``:
exact across nodes, see ``redis_policy``).  A request that is refused is not counted.

Headers (unless ``hide_client_headers``): ``X-RateLimit-Limit-<Period>`` /
``X-RateLimit-Remaining-<Period>`` for each period, and ``RateLimit-Limit`` /
``RateLimit-Remaining`` / ``RateLimit-Reset`` for the period with the fewest remaining requests
(ties: the longer period); on refusal also ``Retry-After`` (= that reset).  Windows are Kong's
calendar windows in UTC; the reset is computed as Kong does (a month counts as 30 days).

Redis unreachable: ``fault_tolerant`` → proxied without headers (logged, at most every 10 s per
plugin instance); otherwise 500 "An unexpected error occurred".
"""

from __future__ import annotations

import calendar
import logging
import time
from collections.abc import Awaitable
from typing import Any

from meshgate.proxy.filters.api import CompileEnv, HeaderBlock, PluginHandler, RequestContext
from meshgate.snapshot import PluginInstance

from .backend import ThrottledReports, counter_backend
from .redis_policy import REDIS_ERRORS
from .schema import PERIODS, Config, number_text
from .shared_counters import CounterStore, group_hash, period_fingerprint

_log = logging.getLogger("meshgate.plugins.rate-limiting")

EXPIRATION = (1, 60, 3600, 86400, 2592000, 31536000)
EMPTY_UUID = "00000000-0000-0000-0000-000000000000"
MSG_UNEXPECTED = "An unexpected error occurred"
_KEY_CACHE_MAX = 65536
wall_clock = time.time  # a module attribute so tests can move time


def period_starts(now: int) -> tuple[int, int, int, int, int, int]:
    """Start (epoch seconds, UTC) of the second/minute/hour/day/month/year ``now`` is in."""
    tm = time.gmtime(now)
    day = now - now % 86400
    month = calendar.timegm((tm.tm_year, tm.tm_mon, 1, 0, 0, 0))
    year = calendar.timegm((tm.tm_year, 1, 1, 0, 0, 0))
    return now, now - now % 60, now - now % 3600, day, month, year


_starts_cache: list[Any] = [-1, None]


def cached_period_starts(now: int) -> tuple[int, int, int, int, int, int]:
    """``period_starts`` computed once per second per process."""
    if _starts_cache[0] != now:
        _starts_cache[1] = period_starts(now)
        _starts_cache[0] = now
    starts: tuple[int, int, int, int, int, int] = _starts_cache[1]
    return starts


class _Period:
    __slots__ = (
        "expiration", "index", "integral", "limit", "limit_header", "limit_text", "name",
        "rem_header",
    )  # fmt: skip

    def __init__(self, index: int, limit: float) -> None:
        self.index = index
        self.name = PERIODS[index]
        self.limit = limit
        # a whole limit (the usual case): remaining counts print with str(), as number_text would
        self.integral = float(limit).is_integer()
        self.limit_text = number_text(limit)
        self.expiration = EXPIRATION[index]
        title = self.name.capitalize()
        self.limit_header = f"X-RateLimit-Limit-{title}"
        self.rem_header = f"X-RateLimit-Remaining-{title}"


class Handler(PluginHandler):
    name = "rate-limiting"
    PRIORITY = 910
    VERSION = "3.9.1"

    def __init__(self, config: Config, instance: PluginInstance, env: CompileEnv) -> None:
        super().__init__(config, instance, env)
        self.conf = config
        self.periods = [
            _Period(i, limit)
            for i, name in enumerate(PERIODS)
            if (limit := getattr(config, name)) is not None
        ]
        self.limits = [p.limit for p in self.periods]
        # the client headers, in the order they were always set: each period's limit and
        # remaining, then the IETF draft trio (names fixed per config: checked once)
        self.client_headers = HeaderBlock(
            [name for p in self.periods for name in (p.limit_header, p.rem_header)]
            + ["RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"]
        )
        self.period_indexes = [p.index for p in self.periods]
        self.route_id = instance.route or EMPTY_UUID
        self.service_id = instance.service or EMPTY_UUID
        self.scope = f"{self.route_id}|{self.service_id}|"
        self.limit_by = config.limit_by
        self.header_name = (config.header_name or "").lower()
        self.hide = config.hide_client_headers
        self.fault_tolerant = config.fault_tolerant
        self._keys: dict[str, tuple[int, list[int], list[int]]] = {}
        self._second = -1
        self._windows: list[int] = []
        self._expires: list[int] = []
        self.reports = ThrottledReports(_log, f"rate-limiting ({config.policy})")
        self.store, self.redis = counter_backend(config.policy, config.redis, env)

    # ------------------------------------------------------------------ identity

    def identifier(self, ctx: RequestContext) -> str:
        """Kong's ``get_identifier``: what this request is counted by."""
        by = self.limit_by
        found: str | None = None
        if by == "ip":
            return ctx.client_ip
        if by == "consumer":
            consumer = ctx.consumer
            if consumer is not None:
                found = consumer.id
            elif ctx.credential is not None:
                found = _cred_id(ctx.credential)
        elif by == "credential":
            if ctx.credential is not None:
                found = _cred_id(ctx.credential)
        elif by == "service":
            service = ctx.service
            found = service.id if service is not None else None
        elif by == "header":
            found = ctx.header(self.header_name)
        elif ctx.path == self.conf.path:
            found = ctx.path
        return found or ctx.client_ip

    def _key(self, store: CounterStore, identifier: str) -> tuple[int, list[int], list[int]]:
        """(stripe, fingerprints, home slots) of an identifier, cached per handler."""
        cached = self._keys.get(identifier)
        if cached is None:
            if len(self._keys) >= _KEY_CACHE_MAX:
                self._keys.clear()
            group = group_hash(self.scope + identifier)
            fingerprints = [period_fingerprint(group, i) for i in self.period_indexes]
            stripe, homes = store.placement(group, fingerprints)
            cached = self._keys[identifier] = (stripe, fingerprints, homes)
        return cached

    # ------------------------------------------------------------------ access

    def access(self, ctx: RequestContext) -> Awaitable[None] | None:
        identifier = self.identifier(ctx)
        now = int(wall_clock())
        starts = cached_period_starts(now)
        if self.redis is not None:
            return self._redis_access(ctx, identifier, now, starts)
        store = self.store
        assert store is not None
        cached = self._keys.get(identifier)
        stripe, fingerprints, homes = cached if cached is not None else self._key(store, identifier)
        if now != self._second:
            self._windows = [starts[i] for i in self.period_indexes]
            self._expires = [
                w + p.expiration for w, p in zip(self._windows, self.periods, strict=True)
            ]
            self._second = now
        try:
            usage, stop = store.hit(
                stripe, fingerprints, homes, self._windows, self._expires, self.limits, now
            )
        except OSError as err:
            self._store_failed(ctx, err)
            return None
        self._answer(ctx, usage, stop, now, starts)
        return None

    async def _redis_access(
        self, ctx: RequestContext, identifier: str, now: int, starts: tuple[int, ...]
    ) -> None:
        assert self.redis is not None
        prefix = f"ratelimit:{self.route_id}:{self.service_id}:{identifier}:"
        keys = [f"{prefix}{starts[p.index] * 1000}:{p.name}" for p in self.periods]
        args: list[str | int] = []
        for p in self.periods:
            args += [repr(p.limit), p.expiration]
        try:
            usage, stop = await self.redis.hit(keys, args)
        except REDIS_ERRORS as err:
            self._store_failed(ctx, err)
            return
        self._answer(ctx, usage, stop, now, starts)

    def _store_failed(self, ctx: RequestContext, err: BaseException) -> None:
        if not self.fault_tolerant:
            _log.error("rate-limiting (%s): failed to get usage: %r", self.conf.policy, err)
            ctx.exit(500, MSG_UNEXPECTED)
        self.reports.report(f"failed to get usage, request let through: {err!r}")

    def _answer(
        self,
        ctx: RequestContext,
        usage: list[int],
        stop: int,
        now: int,
        starts: tuple[int, ...],
    ) -> None:
        reset = 0
        if not self.hide:
            values: list[str | None] = []
            best: _Period | None = None
            best_remaining = 0.0
            best_text = ""
            for j, period in enumerate(self.periods):
                remaining = period.limit - usage[j]
                if stop < 0 or stop == j:
                    remaining -= 1
                remaining = max(0, remaining)
                text = str(int(remaining)) if period.integral else number_text(remaining)
                if (
                    best is None
                    or remaining < best_remaining
                    or (remaining == best_remaining and period.expiration > best.expiration)
                ):
                    best, best_remaining, best_text = period, remaining, text
                    reset = max(1, period.expiration - (now - starts[period.index]))
                values.append(period.limit_text)
                values.append(text)
            assert best is not None
            values.append(best.limit_text)
            values.append(best_text)
            values.append(str(reset))
            ctx.set_response_headers(self.client_headers, values)
        if stop >= 0:
            if not self.hide:
                ctx.set_response_header("Retry-After", str(reset))
            ctx.exit(self.conf.error_code, self.conf.error_message)


def _cred_id(credential: Any) -> str | None:
    value = credential.get("id")
    return None if value is None else str(value)
