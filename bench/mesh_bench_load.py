"""Fixed-rate open-loop HTTP/1.1 load for the mesh bench (a small stand-in for wrk2).

Requests are scheduled at ``start + i / rate``; each one's latency is measured from that
intended send time, not from when a connection became free, so a stall shows up in the
latency of every request it delayed (no coordinated omission).  Targets share one schedule
in alternating slices (``slice_s`` each), so they see the same machine noise.  Keep-alive
connections (``asyncio.Protocol`` + httptools, no task per request, so the generator spends
little CPU of its own) come from a per-target pool that grows when every connection is busy.

The generator's own delay is recorded too: ``lateness_ms`` is how late each request was
written after its intended time (timer granularity, a busy loop, the CPU taken by others).
The mesh bench runs this module as its own process (``python mesh_bench_load.py --target
NAME=PORT ...``, one JSON object on stdout) so that nothing else — RSS sampling, reading
``/proc`` — runs on the generator's event loop; during the measured phase the generator's
garbage collector is off (its objects were frozen after the warm-up).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import gc
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

import httptools

from meshgate.tasks import spawn

REQUEST = b"GET / HTTP/1.1\r\nhost: bench\r\nuser-agent: mesh-bench\r\n\r\n"


@dataclass
class TargetStats:
    name: str
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    dropped: int = 0  # never sent: waited over ``give_up_s`` for a free connection
    non_2xx: int = 0
    connections_opened: int = 0
    lateness_ms: list[float] = field(default_factory=list)  # write time - intended time


@dataclass(slots=True)
class _Request:
    intended: float
    record: bool


class _Connection(asyncio.Protocol):
    """One keep-alive connection; responses are parsed by httptools, one request at a time."""

    def __init__(self, pool: _Pool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.pending: _Request | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def send(self, request: _Request) -> None:
        assert self.transport is not None
        self.pending = request
        self.transport.write(REQUEST)
        if request.record:
            self.pool.stats.lateness_ms.append((time.perf_counter() - request.intended) * 1000)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.close()

    def on_message_complete(self) -> None:
        request, self.pending = self.pending, None
        if request is not None:
            self.pool.answered(self, request, self.parser.get_status_code())
        if not self.parser.should_keep_alive():
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.pool.lost(self)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class _Pool:
    """Per-target keep-alive connections; requests wait in order for a free one."""

    def __init__(self, port: int, stats: TargetStats, max_connections: int, give_up_s: float):
        self.port, self.stats = port, stats
        self.max_connections, self.give_up_s = max_connections, give_up_s
        self.idle: list[_Connection] = []
        self.all: set[_Connection] = set()
        self.waiting: collections.deque[_Request] = collections.deque()
        self.opening = 0
        self.outstanding = 0  # requests submitted and neither answered, dropped nor failed
        self.settled = asyncio.Event()  # set while nothing is outstanding
        self.settled.set()

    def _settle(self, count: int = 1) -> None:
        self.outstanding -= count
        if self.outstanding <= 0:
            self.settled.set()

    async def warm(self, count: int) -> None:
        for _ in range(count):
            await self._open()

    async def _open(self) -> None:
        self.opening += 1
        loop = asyncio.get_running_loop()
        try:
            _, connection = await loop.create_connection(
                lambda: _Connection(self), "127.0.0.1", self.port
            )
        except OSError:
            self._fail(self.waiting.popleft() if self.waiting else None)
            return
        finally:
            self.opening -= 1
        self.stats.connections_opened += 1
        self.all.add(connection)
        self._give(connection)

    def submit(self, request: _Request) -> None:
        self.outstanding += 1
        self.settled.clear()
        if self.idle:
            self.idle.pop().send(request)
            return
        self.waiting.append(request)
        if len(self.all) + self.opening < self.max_connections:
            spawn(self._open(), name=f"load-open-{self.port}")

    def answered(self, connection: _Connection, request: _Request, status: int) -> None:
        self._settle()
        if request.record:
            self.stats.latencies_ms.append((time.perf_counter() - request.intended) * 1000)
            if not 200 <= status < 300:
                self.stats.non_2xx += 1
        self._give(connection)

    def _give(self, connection: _Connection) -> None:
        """A free connection takes the oldest waiting request still worth sending."""
        now = time.perf_counter()
        while self.waiting:
            request = self.waiting.popleft()
            if now - request.intended <= self.give_up_s:
                connection.send(request)
                return
            self._settle()
            self.stats.dropped += request.record
        if connection in self.all:
            self.idle.append(connection)

    def lost(self, connection: _Connection) -> None:
        self.all.discard(connection)
        if connection in self.idle:
            self.idle.remove(connection)
        if connection.pending is not None:
            self._fail(connection.pending)
            connection.pending = None
        if self.waiting and len(self.all) + self.opening < self.max_connections:
            spawn(self._open(), name=f"load-open-{self.port}")

    def _fail(self, request: _Request | None) -> None:
        if request is not None:
            self._settle()
            self.stats.errors += request.record

    def close(self) -> None:
        for connection in list(self.all):
            connection.close()


async def run_fixed_rate(
    targets: dict[str, int],
    *,
    rate: float,
    duration_s: float,
    slice_s: float = 1.0,
    warmup_s: float = 1.0,
    on_tick: Callable[[], None] | None = None,
    max_connections: int = 64,
    give_up_s: float = 2.0,
) -> dict[str, TargetStats]:
    """Offer ``rate`` requests/s for ``duration_s`` per target, targets alternating per slice.

    ``on_tick`` runs about every 100 ms (e.g. to sample RSS). Warm-up requests (first
    ``warmup_s`` of each target) are sent but not recorded. At most ``max_connections`` per
    target; a request that waited ``give_up_s`` for one is dropped and counted (so an
    overloaded target cannot swamp the generator and the other targets' slices).
    """
    stats = {name: TargetStats(name) for name in targets}
    pools = {
        name: _Pool(port, stats[name], max_connections, give_up_s) for name, port in targets.items()
    }
    for pool in pools.values():
        await pool.warm(8)
    names = list(targets)
    for phase, seconds in (("warmup", warmup_s), ("measure", duration_s)):
        record = phase == "measure"
        if record:
            gc.collect()
            gc.freeze()
            gc.disable()
        total_s = seconds * len(names)
        count = int(total_s * rate)
        start = time.perf_counter() + 0.01
        next_tick = start
        index = 0
        while index < count:
            now = time.perf_counter()
            intended = start + index / rate
            if intended > now:
                await asyncio.sleep(intended - now)
            while index < count and (intended := start + index / rate) <= time.perf_counter():
                name = names[int((intended - start) / slice_s) % len(names)]
                pools[name].submit(_Request(intended, record))
                index += 1
            if on_tick is not None and intended >= next_tick:
                next_tick = intended + 0.1
                on_tick()
        settled = asyncio.gather(*(pool.settled.wait() for pool in pools.values()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(settled, 15)
        for pool in pools.values():  # no answer within 15 s: failed
            pool.stats.errors += pool.outstanding if record else 0
            pool._settle(pool.outstanding)
    gc.enable()
    gc.unfreeze()
    for pool in pools.values():
        pool.close()
    with contextlib.suppress(Exception):
        await asyncio.sleep(0)
    return stats


def percentiles(values: list[float]) -> dict[str, float | None]:
    """p50/p90/p99/p999/max of ``values`` (nearest-rank), None when empty."""
    ordered = sorted(values)
    if not ordered:
        return {"p50": None, "p90": None, "p99": None, "p999": None, "max": None}

    def rank(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.5) - 1))]

    return {
        "p50": rank(0.50),
        "p90": rank(0.90),
        "p99": rank(0.99),
        "p999": rank(0.999),
        "max": ordered[-1],
    }


def summary(target: TargetStats) -> dict[str, object]:
    """What the mesh bench reports of one target."""
    return {
        **percentiles(target.latencies_ms),
        "requests": len(target.latencies_ms),
        "errors": target.errors,
        "dropped": target.dropped,
        "non_2xx": target.non_2xx,
        "connections_opened": target.connections_opened,
        "lateness_ms": percentiles(target.lateness_ms),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="fixed-rate open-loop load; JSON on stdout")
    parser.add_argument("--target", action="append", required=True, help="NAME=PORT")
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per target")
    parser.add_argument("--slice", type=float, default=1.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    args = parser.parse_args()
    targets = {}
    for item in args.target:
        name, _, port = item.partition("=")
        targets[name] = int(port)
    import uvloop

    stats = uvloop.run(
        run_fixed_rate(
            targets,
            rate=args.rate,
            duration_s=args.duration,
            slice_s=args.slice,
            warmup_s=args.warmup,
        )
    )
    json.dump({name: summary(target) for name, target in stats.items()}, sys.stdout)


if __name__ == "__main__":
    main()
