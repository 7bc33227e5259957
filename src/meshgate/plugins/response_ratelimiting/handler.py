"""response-ratelimiting: the upstream says how many units of each named limit a request
used (``x-kong-limit: videos=2, images=1``); once a period's units are spent, requests that
would spend more are refused with 429 (Kong's PRIORITY 900, headers and semantics).

Per request:
  access    read the usage of every limit's periods (``local``: the node's shared counter file
            of rate-limiting; ``redis``: one MGET); send ``X-RateLimit-Remaining-<name>`` (the
            lowest remaining of its periods) upstream; with ``block_on_first_violation`` a
            limit with a period used up refuses the request (429 "API rate limit exceeded
            for '<name>'").
  response  parse the upstream's ``header_name`` (``name=units`` pairs, unknown names
            ignored), send ``X-RateLimit-Limit-<name>-<period>`` /
            ``X-RateLimit-Remaining-<name>-<period>`` (remaining after this request, at least
            0) unless ``hide_client_headers``, remove the header; a request that spends units
            of a limit with a period already used up is answered 429 with no body (nothing is
            counted for it).
  log       add the units to every period of each limit (Redis: in a task).

Deliberate difference: Kong blocks on first violation only when a period's remaining is
exactly 0; an upstream that overspent makes it negative, and Kong then stops blocking.  Here
any remaining <= 0 blocks.  Units must be whole numbers (Kong's ``tonumber`` also takes
fractions; they are ignored here).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable
from typing import Any

from meshgate import tasks
from meshgate.plugins.rate_limiting.backend import ThrottledReports, counter_backend
from meshgate.plugins.rate_limiting.handler import (
    EMPTY_UUID,
    EXPIRATION,
    MSG_UNEXPECTED,
    cached_period_starts,
)
from meshgate.plugins.rate_limiting.redis_policy import REDIS_ERRORS
from meshgate.plugins.rate_limiting.schema import PERIODS, number_text
from meshgate.plugins.rate_limiting.shared_counters import (
    CounterStore,
    group_hash,
    period_fingerprint,
)
from meshgate.proxy.filters.api import CompileEnv, PluginHandler, RequestContext
from meshgate.snapshot import PluginInstance

from .schema import Config

_log = logging.getLogger("meshgate.plugins.response-ratelimiting")
_KEY_CACHE_MAX = 65536
wall_clock = time.time  # a module attribute so tests can move time

Placement = tuple[int, list[int], list[int]]  # stripe, fingerprints, home slots


class _Period:
    __slots__ = ("expiration", "index", "limit", "limit_header", "limit_text", "name", "rem_header")

    def __init__(self, limit_name: str, index: int, limit: float) -> None:
        self.index = index
        self.name = PERIODS[index]
        self.limit = limit
        self.limit_text = number_text(limit)
        self.expiration = EXPIRATION[index]
        self.limit_header = f"X-RateLimit-Limit-{limit_name}-{self.name}"
        self.rem_header = f"X-RateLimit-Remaining-{limit_name}-{self.name}"


class _Limit:
    __slots__ = ("name", "periods", "upstream_header")

    def __init__(self, name: str, values: Any) -> None:
        self.name = name
        self.periods = [
            _Period(name, i, value)
            for i, period in enumerate(PERIODS)
            if (value := getattr(values, period)) is not None
        ]
        self.upstream_header = f"X-RateLimit-Remaining-{name}"


class _State:
    """One request's figures, from access to log."""

    __slots__ = ("identifier", "increments", "now", "remaining", "starts", "stopped")

    def __init__(
        self, identifier: str, now: int, starts: tuple[int, ...], remaining: list[list[float]]
    ) -> None:
        self.identifier = identifier
        self.now = now
        self.starts = starts
        self.remaining = remaining  # per limit, per period: limit - usage before this request
        self.increments: dict[str, int] = {}
        self.stopped = False


def parse_increments(values: Any, known: set[str]) -> dict[str, int]:
    """``name=units`` pairs (comma-separated, in one or several header values) of known
    limits; a later pair of the same name wins, as in Kong."""
    found: dict[str, int] = {}
    for value in values:
        for part in value.split(","):
            pieces = part.split("=")
            if len(pieces) != 2:
                continue
            name = pieces[0].strip()
            if name not in known:
                continue
            units = _whole_number(pieces[1].strip())
            if units is None:
                found.pop(name, None)
            else:
                found[name] = units
    return found


def _whole_number(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return None
    return int(number) if number.is_integer() else None


class Handler(PluginHandler):
    name = "response-ratelimiting"
    PRIORITY = 900
    VERSION = "3.9.1"

    def __init__(self, config: Config, instance: PluginInstance, env: CompileEnv) -> None:
        super().__init__(config, instance, env)
        self.conf = config
        self.limits = [_Limit(name, values) for name, values in config.limits.items()]
        self.known = {limit.name for limit in self.limits}
        self.header_name = config.header_name.lower()
        self.route_id = instance.route or EMPTY_UUID
        self.service_id = instance.service or EMPTY_UUID
        self.scope = f"response-ratelimiting|{self.route_id}|{self.service_id}|"
        self.state_key = f"response-ratelimiting:{instance.id}"
        self._keys: dict[str, list[Placement]] = {}
        self.reports = ThrottledReports(_log, f"response-ratelimiting ({config.policy})")
        self.store, self.redis = counter_backend(config.policy, config.redis, env)

    # ------------------------------------------------------------------ identity and keys

    def identifier(self, ctx: RequestContext) -> str:
        """Kong's ``get_identifier``: consumer (or credential) id, else the client IP."""
        found: Any = None
        by = self.conf.limit_by
        if by == "consumer" and ctx.consumer is not None:
            found = ctx.consumer.id
        elif by in ("consumer", "credential") and ctx.credential is not None:
            found = ctx.credential.get("id")
        return str(found) if found else ctx.client_ip

    def _placements(self, store: CounterStore, identifier: str) -> list[Placement]:
        cached = self._keys.get(identifier)
        if cached is None:
            if len(self._keys) >= _KEY_CACHE_MAX:
                self._keys.clear()
            cached = []
            for limit in self.limits:
                group = group_hash(f"{self.scope}{identifier}|{limit.name}")
                fingerprints = [period_fingerprint(group, p.index) for p in limit.periods]
                stripe, homes = store.placement(group, fingerprints)
                cached.append((stripe, fingerprints, homes))
            self._keys[identifier] = cached
        return cached

    def redis_keys(self, identifier: str, starts: tuple[int, ...], limit: _Limit) -> list[str]:
        """Kong's keys: ``response-ratelimit:<route>:<service>:<id>:<window ms>:<name>:<period>``."""
        prefix = f"response-ratelimit:{self.route_id}:{self.service_id}:{identifier}:"
        return [f"{prefix}{starts[p.index] * 1000}:{limit.name}:{p.name}" for p in limit.periods]

    # ------------------------------------------------------------------ access

    def access(self, ctx: RequestContext) -> Awaitable[None] | None:
        identifier = self.identifier(ctx)
        now = int(wall_clock())
        starts = cached_period_starts(now)
        if self.redis is not None:
            return self._redis_access(ctx, identifier, now, starts)
        store = self.store
        assert store is not None
        usage: list[list[int]] = []
        try:
            for limit, (stripe, fingerprints, homes) in zip(
                self.limits, self._placements(store, identifier), strict=True
            ):
                windows = [starts[p.index] for p in limit.periods]
                usage.append(store.counts(stripe, fingerprints, homes, windows, now))
        except OSError as err:
            self._store_failed(ctx, err)
            return None
        self._admit(ctx, _State(identifier, now, starts, self._remaining(usage)))
        return None

    async def _redis_access(
        self, ctx: RequestContext, identifier: str, now: int, starts: tuple[int, ...]
    ) -> None:
        assert self.redis is not None
        keys = [self.redis_keys(identifier, starts, limit) for limit in self.limits]
        try:
            flat = await self.redis.counts([key for group in keys for key in group])
        except REDIS_ERRORS as err:
            self._store_failed(ctx, err)
            return
        usage, at = [], 0
        for group in keys:
            usage.append(flat[at : at + len(group)])
            at += len(group)
        self._admit(ctx, _State(identifier, now, starts, self._remaining(usage)))

    def _remaining(self, usage: list[list[int]]) -> list[list[float]]:
        return [
            [p.limit - used for p, used in zip(limit.periods, counts, strict=True)]
            for limit, counts in zip(self.limits, usage, strict=True)
        ]

    def _admit(self, ctx: RequestContext, state: _State) -> None:
        block = self.conf.block_on_first_violation
        for limit, remaining in zip(self.limits, state.remaining, strict=True):
            lowest = min(remaining)
            if block and lowest <= 0:
                ctx.exit(429, f"API rate limit exceeded for '{limit.name}'")
            ctx.set_header(limit.upstream_header, number_text(lowest))
        ctx.shared[self.state_key] = state

    def _store_failed(self, ctx: RequestContext, err: BaseException) -> None:
        if not self.conf.fault_tolerant:
            _log.error("response-ratelimiting (%s): failed to get usage: %r", self.conf.policy, err)
            ctx.exit(500, MSG_UNEXPECTED)
        self.reports.report(f"failed to get usage, request let through: {err!r}")

    # ------------------------------------------------------------------ response

    def response(self, ctx: RequestContext) -> None:
        state: _State | None = ctx.shared.get(self.state_key)
        if state is None:
            return
        values = ctx.response_headers().get(self.header_name)
        increments = parse_increments(values, self.known) if values else {}
        state.increments = increments
        show = not self.conf.hide_client_headers
        stop = False
        for limit, remaining in zip(self.limits, state.remaining, strict=True):
            units = increments.get(limit.name, 0)
            for period, left in zip(limit.periods, remaining, strict=True):
                if show:
                    ctx.set_response_header(period.limit_header, period.limit_text)
                    ctx.set_response_header(period.rem_header, number_text(max(0, left - units)))
                if units > 0 and left <= 0:
                    stop = True
        if values:
            ctx.clear_response_header(self.header_name)
        if stop:
            state.stopped = True
            ctx.exit(429)

    # ------------------------------------------------------------------ log

    def log(self, ctx: RequestContext) -> None:
        state: _State | None = ctx.shared.get(self.state_key)
        if state is None or state.stopped or not state.increments:
            return
        spent = [
            (limit, i, state.increments[limit.name])
            for i, limit in enumerate(self.limits)
            if state.increments.get(limit.name)
        ]
        if not spent:
            return
        if self.redis is not None:
            tasks.spawn(self._redis_add(state, spent), name="response-ratelimiting: count")
            return
        store = self.store
        assert store is not None
        placements = self._placements(store, state.identifier)
        try:
            for limit, i, units in spent:
                stripe, fingerprints, homes = placements[i]
                windows = [state.starts[p.index] for p in limit.periods]
                expires = [w + p.expiration for w, p in zip(windows, limit.periods, strict=True)]
                store.add(stripe, fingerprints, homes, windows, expires, units, state.now)
        except OSError as err:
            self.reports.report(f"failed to count usage: {err!r}")

    async def _redis_add(self, state: _State, spent: list[tuple[_Limit, int, int]]) -> None:
        assert self.redis is not None
        try:
            for limit, _, units in spent:
                keys = self.redis_keys(state.identifier, state.starts, limit)
                await self.redis.add(keys, [p.expiration for p in limit.periods], units)
        except REDIS_ERRORS as err:
            self.reports.report(f"failed to count usage: {err!r}")
