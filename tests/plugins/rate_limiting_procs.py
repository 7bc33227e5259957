"""Process targets for the rate-limiting tests (kept light: spawned children import this only)."""

from __future__ import annotations

from typing import Any

from meshgate.plugins.rate_limiting.shared_counters import (
    CounterStore,
    group_hash,
    period_fingerprint,
)


def hit(store: CounterStore, key: str, limit: float, window: int = 1000, now: int = 1000) -> bool:
    """One check-and-count of ``key``'s minute counter; True when allowed."""
    group = group_hash(key)
    fps = [period_fingerprint(group, 1)]
    stripe, homes = store.placement(group, fps)
    return store.hit(stripe, fps, homes, [window], [window + 60], [limit], now)[1] < 0


def hammer(path: str, key: str, limit: int, tries: int, start: Any, out: Any) -> None:
    """Say ready, wait for the start signal, then try ``tries`` times; report how many passed."""
    store = CounterStore(path)
    out.put("ready")
    start.wait()
    allowed = sum(hit(store, key, limit) for _ in range(tries))
    out.put(allowed)
    store.close()


def redis_hammer(host: str, port: int, key: str, limit: int, tries: int, start: Any,
                 out: Any) -> None:  # fmt: skip
    """``hammer`` against Redis: ``tries`` concurrent check-and-counts from this process."""
    import asyncio

    from meshgate.plugins.rate_limiting.redis_policy import RedisCounters
    from meshgate.plugins.rate_limiting.schema import RedisConfig

    counters = RedisCounters(RedisConfig(host=host, port=port), {})

    async def run() -> int:
        async def one() -> bool:
            return (await counters.hit([key], [str(limit), 60]))[1] < 0

        try:
            results = await asyncio.gather(*(one() for _ in range(tries)))
        finally:
            await counters.aclose()
        return sum(results)

    out.put("ready")
    start.wait()
    out.put(asyncio.run(run()))


def hold_stripe_and_die(path: str, stripe: int, out: Any) -> None:
    """Open the store, take ``stripe``'s lock and die holding it (no release, no cleanup)."""
    import os

    store = CounterStore(path)
    store._acquire(stripe)
    out.put("holding")
    out.close()
    out.join_thread()  # the message is out before the process vanishes
    os._exit(0)
