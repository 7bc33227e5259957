"""Worker-local accumulation of request metrics, flushed into prometheus-client.

A prometheus-client ``inc``/``observe`` takes a lock (and in multiprocess mode writes an
mmap), a few µs each; the log phase instead adds to plain dicts here (a dict update and a
``bisect``), and ``flush()`` moves the totals into the metric children — every second from
the sampler, and right before rendering.  Kong does the same (worker-local counters synced
to the shared dict every second).  Each thread has its own accumulator (an event loop
runs in one thread) and ``flush`` moves only the calling thread's, so a flush never races
a writer.  The first write after a flush also schedules one ``FLUSH_DELAY`` later on the
running loop, so ``/metrics`` (rendered by another thread or process: the Admin API) lags
the traffic by at most ``FLUSH_DELAY`` rather than the sampler's second, while a busy
worker still flushes once per ``FLUSH_DELAY`` whatever its request rate.
"""

from __future__ import annotations

import asyncio
import threading
from bisect import bisect_left
from typing import Any

FLUSH_DELAY = 0.05


class Pending:
    """Counter deltas and histogram observations not yet in prometheus-client."""

    __slots__ = ("counts", "flush_due", "histograms")

    def __init__(self) -> None:
        self.counts: dict[Any, float] = {}  # counter child -> delta
        # histogram child -> [sum, count in bucket 0, bucket 1, ..., +Inf bucket]
        self.histograms: dict[Any, list[float]] = {}
        self.flush_due = False  # a flush is scheduled on the loop

    def schedule_flush(self) -> None:
        """Flush ``FLUSH_DELAY`` from now on the running loop (no loop: the sampler's)."""
        if self.flush_due:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self.flush_due = True
        loop.call_later(FLUSH_DELAY, self.flush)

    def inc(self, child: Any, amount: float = 1.0) -> None:
        counts = self.counts
        counts[child] = counts.get(child, 0.0) + amount

    def observe(self, child: Any, bounds: list[float], value: float) -> None:
        slots = self.histograms.get(child)
        if slots is None:
            slots = self.histograms[child] = [0.0] * (len(bounds) + 1)
        slots[0] += value
        slots[bisect_left(bounds, value) + 1] += 1

    def flush(self) -> None:
        """Move the totals into prometheus-client (call from the thread that wrote them)."""
        self.flush_due = False
        counts, self.counts = self.counts, {}
        histograms, self.histograms = self.histograms, {}
        for child, amount in counts.items():
            child.inc(amount)
        for child, slots in histograms.items():
            _add_observations(child, slots)


def _add_observations(child: Any, slots: list[float]) -> None:
    buckets = getattr(child, "_buckets", None)
    total = getattr(child, "_sum", None)
    if buckets is None or total is None or len(buckets) != len(slots) - 1:
        raise RuntimeError("unsupported prometheus-client Histogram layout")
    total.inc(slots[0])
    for bucket, count in zip(buckets, slots[1:], strict=True):
        if count:
            bucket.inc(count)


_local = threading.local()


def pending() -> Pending:
    """The calling thread's accumulator."""
    try:
        found: Pending = _local.pending
    except AttributeError:
        found = _local.pending = Pending()
    return found


def bounds_of(child: Any) -> list[float]:
    """The upper bounds of a histogram child (``+Inf`` last)."""
    bounds: list[float] = list(child._upper_bounds)
    return bounds
