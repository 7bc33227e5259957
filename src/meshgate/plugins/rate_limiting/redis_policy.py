"""The ``redis`` policy: counters in Redis, exact across every node that shares it.

One request = one ``EVALSHA`` of a script that reads the counters of every limited period and,
only when none is exhausted, increments them all (setting the expiry of a new window) — the
check and the count are one atomic step in Redis, so N nodes x M workers letting requests
through against a limit L let exactly L through.  Keys are Kong's
(``ratelimit:<route>:<service>:<identifier>:<window start ms>:<period>``).

Clients are per (connection settings, event loop): each worker process runs its own loop, and
a client must not be shared across loops.  They live for the process (node resources).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from .schema import RedisConfig

# Errors that mean "Redis could not answer": fault_tolerant decides what happens then.
REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)

CHECK_AND_COUNT = """
local n = #KEYS
local out = {}
local stop = 0
for i = 1, n do
  local used = tonumber(redis.call('GET', KEYS[i]) or '0')
  out[i] = used
  if stop == 0 and tonumber(ARGV[2 * i - 1]) - used <= 0 then
    stop = i
  end
end
if stop == 0 then
  for i = 1, n do
    if redis.call('INCR', KEYS[i]) == 1 then
      redis.call('EXPIRE', KEYS[i], ARGV[2 * i])
    end
  end
end
out[n + 1] = stop
return out
"""


ADD = """
for i = 1, #KEYS do
  redis.call('INCRBY', KEYS[i], ARGV[1])
  if redis.call('TTL', KEYS[i]) < 0 then
    redis.call('EXPIRE', KEYS[i], ARGV[i + 1])
  end
end
return 0
"""


def _client_key(conf: RedisConfig) -> tuple[Any, ...]:
    return (
        conf.host,
        conf.port,
        conf.database,
        conf.username,
        conf.password,
        conf.ssl,
        conf.ssl_verify,
        conf.server_name,
        conf.timeout,
    )


class RedisCounters:
    """Check-and-count against one Redis (a ``RedisConfig``), from any event loop."""

    def __init__(self, conf: RedisConfig, clients: dict[tuple[Any, ...], Any]) -> None:
        self.conf = conf
        self.timeout = max(conf.timeout, 1) / 1000.0
        key = _client_key(conf)
        per_loop = clients.get(key)
        if per_loop is None:
            per_loop = clients[key] = weakref.WeakKeyDictionary()
        self._per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = per_loop

    def _script(self) -> Any:
        return self._entry()[1]

    def _entry(self) -> tuple[Any, Any, Any]:
        """This loop's (client, check-and-count script, add script)."""
        loop = asyncio.get_running_loop()
        found: tuple[Any, Any, Any] | None = self._per_loop.get(loop)
        if found is not None:
            return found
        conf = self.conf
        client = aioredis.Redis(
            host=conf.host or "127.0.0.1",
            port=conf.port,
            db=conf.database,
            username=conf.username,
            password=conf.password,
            ssl=conf.ssl,
            ssl_cert_reqs="required" if conf.ssl_verify else "none",
            ssl_check_hostname=conf.ssl_verify,
            socket_timeout=self.timeout,
            socket_connect_timeout=self.timeout,
            retry=Retry(NoBackoff(), 0),
            decode_responses=False,
        )
        entry = (client, client.register_script(CHECK_AND_COUNT), client.register_script(ADD))
        self._per_loop[loop] = entry
        return entry

    async def aclose(self) -> None:
        """Close this loop's client (a worker loop's client otherwise lives with the process)."""
        found = self._per_loop.pop(asyncio.get_running_loop(), None)
        if found is not None:
            await found[0].aclose()

    async def hit(self, keys: Sequence[str], args: Sequence[str | int]) -> tuple[list[int], int]:
        """Usage of each key before this request and the index of the first exhausted one
        (nothing counted) or -1 (all counted).  Raises one of ``REDIS_ERRORS``."""
        script = self._script()
        async with asyncio.timeout(self.timeout):
            result = await script(keys=list(keys), args=list(args))
        values = [int(v) for v in result]
        return values[:-1], values[-1] - 1

    async def counts(self, keys: Sequence[str]) -> list[int]:
        """The value of each key (0 when absent).  Raises one of ``REDIS_ERRORS``."""
        client = self._entry()[0]
        async with asyncio.timeout(self.timeout):
            result = await client.mget(list(keys))
        return [int(v) if v is not None else 0 for v in result]

    async def add(self, keys: Sequence[str], expirations: Sequence[int], amount: int) -> None:
        """Add ``amount`` to each key; a key it creates expires after its expiration (s)."""
        script = self._entry()[2]
        async with asyncio.timeout(self.timeout):
            await script(keys=list(keys), args=[amount, *expirations])
