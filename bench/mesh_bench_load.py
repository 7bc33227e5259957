"""Fixed-rate open-loop HTTP/1.1 load for the mesh bench (a small stand-in for wrk2).

Requests are scheduled at ``start + i / rate``; each one's latency is measured from that
intended send time, not from when a connection became free, so a stall shows up in the
latency of every request it delayed (no coordinated omission).  Targets share one schedule
in alternating slices (``slice_s`` each), so they see the same machine noise.  Keep-alive
connections come from a per-target pool that grows when every connection is busy.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from meshgate.tasks import spawn

REQUEST = b"GET / HTTP/1.1\r\nhost: bench\r\nuser-agent: mesh-bench\r\n\r\n"


class BadResponse(Exception):
    """The server answered something that is not a complete HTTP/1.1 response."""


@dataclass
class TargetStats:
    name: str
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    dropped: int = 0  # never sent: waited over ``give_up_s`` for a free connection
    non_2xx: int = 0
    connections_opened: int = 0


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def exchange(self) -> int:
        """Send one GET and read the whole response; returns its status."""
        self.writer.write(REQUEST)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        if not lines[0].startswith("HTTP/1.1 "):
            raise BadResponse(lines[0][:60])
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            await self._read_chunked()
        if headers.get("connection", "").lower() == "close":
            raise ConnectionResetError("server closed the keep-alive connection")
        return status

    async def _read_chunked(self) -> None:
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await self.reader.readexactly(size + 2)
            if size == 0:
                return

    def close(self) -> None:
        self.writer.close()


class _Pool:
    def __init__(self, port: int, stats: TargetStats, max_connections: int) -> None:
        self.port, self.stats = port, stats
        self.idle: list[_Connection] = []
        self.slots = asyncio.Semaphore(max_connections)

    async def _open(self) -> _Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.stats.connections_opened += 1
        return _Connection(reader, writer)

    async def warm(self, count: int) -> None:
        self.idle += [await self._open() for _ in range(count)]

    async def request(self, intended: float, give_up_s: float) -> int | None:
        """The response status; None when the request waited ``give_up_s`` for a connection."""
        async with self.slots:
            if time.perf_counter() - intended > give_up_s:
                return None
            connection = self.idle.pop() if self.idle else await self._open()
            try:
                status = await asyncio.wait_for(connection.exchange(), 10)
            except BaseException:
                connection.close()
                raise
            self.idle.append(connection)
            return status

    def close(self) -> None:
        for connection in self.idle:
            connection.close()
        self.idle = []


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
    pools = {name: _Pool(port, stats[name], max_connections) for name, port in targets.items()}
    for pool in pools.values():
        await pool.warm(8)
    names = list(targets)
    in_flight: set[asyncio.Task[None]] = set()

    async def one(name: str, intended: float, record: bool) -> None:
        try:
            status = await pools[name].request(intended, give_up_s)
        except (OSError, asyncio.IncompleteReadError, BadResponse, TimeoutError, ValueError):
            stats[name].errors += 1
            return
        if status is None:
            stats[name].dropped += record
            return
        latency_ms = (time.perf_counter() - intended) * 1000
        if record:
            stats[name].latencies_ms.append(latency_ms)
            if not 200 <= status < 300:
                stats[name].non_2xx += 1

    for phase, seconds in (("warmup", warmup_s), ("measure", duration_s)):
        total_s = seconds * len(names)
        count = int(total_s * rate)
        start = time.perf_counter() + 0.01
        next_tick = start
        for index in range(count):
            intended = start + index / rate
            delay = intended - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            name = names[int((intended - start) / slice_s) % len(names)]
            task = spawn(one(name, intended, phase == "measure"), name=f"load-{name}-{index}")
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
            if on_tick is not None and intended >= next_tick:
                next_tick = intended + 0.1
                on_tick()
        if in_flight:
            await asyncio.wait(set(in_flight), timeout=15)
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
