"""Worker-local accumulation of request metrics, flushed into prometheus-client.

A prometheus-client ``inc``/``observe`` takes a lock (and in multiprocess mode writes an
mmap), a few µs each; the log phase instead adds to plain lists here, and ``flush()`` moves
the totals into the metric children — every second from
the sampler, and right before rendering.  Kong does the same (worker-local counters synced
to the shared dict every second).  Each thread has its own accumulator (an event loop
runs in one thread) and ``flush`` moves only the calling thread's, so a flush never races
a writer.  The first write after a flush also schedules one ``FLUSH_DELAY`` later on the
running loop, so ``/metrics`` (rendered by another thread or process: the Admin API) lags
the traffic by at most ``FLUSH_DELAY`` rather than the sampler's second, while a busy
worker still flushes once per ``FLUSH_DELAY`` whatever its request rate.

A request lands in one ``Series`` (the children of its route, status, source and consumer,
resolved once by the handler); per series the accumulator is one flat list of numbers
(``LAYOUT``), so a request costs a dict lookup and a few list additions — label sets are
only ever built when a series is first seen.
"""

from __future__ import annotations

import asyncio
import threading
from bisect import bisect_left
from typing import Any

from .metrics import KONG_LATENCY_BUCKETS, UPSTREAM_LATENCY_BUCKETS

FLUSH_DELAY = 0.05

# A series' accumulator: the request count, then per histogram its sum and one count per
# bucket (``+Inf`` last), then the ingress and egress bytes.
_UP_SLOTS = len(UPSTREAM_LATENCY_BUCKETS) + 1
_KONG_SLOTS = len(KONG_LATENCY_BUCKETS) + 1
COUNT = 0
REQUEST_SUM = 1  # kong_request_latency_ms (upstream buckets): sum, then buckets
UPSTREAM_SUM = REQUEST_SUM + 1 + _UP_SLOTS  # kong_upstream_latency_ms
KONG_SUM = UPSTREAM_SUM + 1 + _UP_SLOTS  # kong_kong_latency_ms (kong buckets)
INGRESS = KONG_SUM + 1 + _KONG_SLOTS
EGRESS = INGRESS + 1
LAYOUT_SIZE = EGRESS + 1


class Series:
    """The metric children of one kind of request (any of them None: not counted)."""

    __slots__ = ("bandwidth", "latency", "requests")

    def __init__(self, requests: Any, latency: tuple[Any, Any, Any] | None, bandwidth: Any) -> None:
        self.requests = requests  # the kong_http_requests_total child
        self.latency = latency  # (request, upstream, kong) histogram children
        self.bandwidth = bandwidth  # (ingress, egress) kong_bandwidth_bytes children

    def add(self, acc: list[float]) -> None:
        """Move one accumulator's totals into the children."""
        if self.requests is not None and acc[COUNT]:
            self.requests.inc(acc[COUNT])
        if self.latency is not None:
            for child, start, slots in zip(
                self.latency, (REQUEST_SUM, UPSTREAM_SUM, KONG_SUM),
                (_UP_SLOTS, _UP_SLOTS, _KONG_SLOTS), strict=True,
            ):  # fmt: skip
                part = acc[start : start + 1 + slots]
                if any(part[1:]):
                    _add_observations(child, part)
        if self.bandwidth is not None:
            if acc[INGRESS]:
                self.bandwidth[0].inc(acc[INGRESS])
            if acc[EGRESS]:
                self.bandwidth[1].inc(acc[EGRESS])


class Pending:
    """Counter deltas and histogram observations not yet in prometheus-client."""

    __slots__ = ("counts", "flush_due", "histograms", "series")

    def __init__(self) -> None:
        self.counts: dict[Any, float] = {}  # counter child -> delta
        # histogram child -> [sum, count in bucket 0, bucket 1, ..., +Inf bucket]
        self.histograms: dict[Any, list[float]] = {}
        self.series: dict[Series, list[float]] = {}  # series -> accumulator (``LAYOUT``)
        self.flush_due = False  # a flush is scheduled on the loop

    def track(self, series: Series) -> list[float]:
        """A new (zero) accumulator for ``series``."""
        acc = self.series[series] = [0.0] * LAYOUT_SIZE
        return acc

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
        series, self.series = self.series, {}
        for kind, acc in series.items():
            kind.add(acc)
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
