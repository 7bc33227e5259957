"""``BatchQueue``: Kong's plugin queue (``kong.tools.queue``) for log senders, bounded.

``push`` is synchronous and O(1): the log phase never waits.  A flush task takes up to
``max_batch_size`` entries once the batch is full or ``max_coalescing_delay`` seconds after
its first entry, and hands them to ``send``; a failing send is retried with exponential
backoff (``initial_retry_delay`` doubling up to ``max_retry_delay``) until
``max_retry_time`` has passed, then the batch is dropped.  When ``max_entries`` entries (or
``max_bytes`` bytes) wait, new entries are dropped and counted instead of growing the queue:
``dropped`` (queue full) and ``failed`` (given up after retries) — logged at most every 10 s
and counted in ``meshgate_log_entries_dropped_total{plugin,reason}`` when the prometheus
plugin's metrics are importable.  ``stop`` flushes what is left (bounded by a timeout).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from meshgate import tasks

_log = logging.getLogger("meshgate.plugins.queue")
_WARN_EVERY = 10.0

Sender = Callable[[list[Any]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class QueueLimits:
    """Kong's ``queue`` record (``kong.tools.queue_schema``)."""

    max_batch_size: int = 1
    max_coalescing_delay: float = 1.0
    max_entries: int = 10000
    max_bytes: int | None = None
    max_retry_time: float = 60.0
    initial_retry_delay: float = 0.01
    max_retry_delay: float = 60.0


def _drop_metric(plugin: str, reason: str) -> Any:
    try:
        from meshgate.plugins.prometheus.metrics import log_entries_dropped
    except ImportError:  # pragma: no cover - prometheus-client not installed
        return None
    return log_entries_dropped().labels(plugin=plugin, reason=reason)


class BatchQueue:
    """A bounded queue of encoded log entries and the task that sends them in batches."""

    def __init__(self, plugin: str, name: str, send: Sender, limits: QueueLimits) -> None:
        self.plugin = plugin
        self.name = name
        self._send = send
        self.limits = limits
        self._entries: collections.deque[tuple[Any, int]] = collections.deque()
        self._bytes = 0
        self._wakeup: asyncio.Event | None = None
        self._waiting = False
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.dropped = 0  # refused: the queue was full
        self.failed = 0  # given up on after retries
        self.sent = 0
        self._unreported = 0
        self._last_warning = 0.0
        self._metric_full = _drop_metric(plugin, "queue_full")
        self._metric_failed = _drop_metric(plugin, "send_failed")

    def __len__(self) -> int:
        return len(self._entries)

    # ------------------------------------------------------------------ producer side

    def push(self, entry: Any, size: int = 0) -> bool:
        """Queue ``entry`` (``size`` bytes, for ``max_bytes``); False (and counted) when the
        queue is full or stopping."""
        limits = self.limits
        max_bytes = limits.max_bytes
        if (
            self._stopping
            or len(self._entries) >= limits.max_entries
            or (max_bytes is not None and self._bytes + size > max_bytes)
        ):
            self._count_drop(1, full=True)
            return False
        self._entries.append((entry, size))
        self._bytes += size
        if self._waiting and self._wakeup is not None:
            self._waiting = False
            self._wakeup.set()
        return True

    def _count_drop(self, count: int, *, full: bool) -> None:
        if full:
            self.dropped += count
            if self._metric_full is not None:
                self._metric_full.inc(count)
        else:
            self.failed += count
            if self._metric_failed is not None:
                self._metric_failed.inc(count)
        self._unreported += count
        now = time.monotonic()
        if now - self._last_warning >= _WARN_EVERY:
            self._last_warning = now
            _log.warning(
                "%s queue %s: %d log entries dropped (total: %d queue full, %d send failed)",
                self.plugin, self.name, self._unreported, self.dropped, self.failed,
            )  # fmt: skip
            self._unreported = 0

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if self._task is None:
            self._wakeup = asyncio.Event()
            self._task = tasks.spawn(self._run(), name=f"{self.plugin}-queue:{self.name}")

    async def stop(self, timeout: float = 5.0) -> None:
        """Flush what is queued (up to ``timeout`` seconds), then end the task."""
        self._stopping = True
        task = self._task
        if task is None:
            return
        if self._wakeup is not None:
            self._wakeup.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            task.cancel()
            left = len(self._entries)
            if left:
                self._entries.clear()
                self._count_drop(left, full=False)
        self._task = None

    # ------------------------------------------------------------------ consumer side

    def _take(self) -> list[Any]:
        batch: list[Any] = []
        entries = self._entries
        for _ in range(min(self.limits.max_batch_size, len(entries))):
            entry, size = entries.popleft()
            self._bytes -= size
            batch.append(entry)
        return batch

    async def _wait(self, timeout: float | None) -> None:
        wakeup = self._wakeup
        assert wakeup is not None
        wakeup.clear()
        self._waiting = True
        try:
            if timeout is None:
                await wakeup.wait()
            else:
                await asyncio.wait_for(wakeup.wait(), timeout)
        except TimeoutError:
            pass
        finally:
            self._waiting = False

    async def _run(self) -> None:
        limits = self.limits
        while True:
            if not self._entries:
                if self._stopping:
                    return
                await self._wait(None)
                continue
            if len(self._entries) < limits.max_batch_size and not self._stopping:
                deadline = time.monotonic() + limits.max_coalescing_delay
                while len(self._entries) < limits.max_batch_size and not self._stopping:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    await self._wait(left)
            batch = self._take()
            if batch:
                await self._deliver(batch)

    async def _deliver(self, batch: list[Any]) -> None:
        limits = self.limits
        started = time.monotonic()
        delay = limits.initial_retry_delay
        while True:
            try:
                await self._send(batch)
                self.sent += len(batch)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                waited = time.monotonic() - started
                if (
                    self._stopping
                    or limits.max_retry_time < 0
                    or waited + delay > limits.max_retry_time
                ):
                    _log.error("%s queue %s: dropping a batch of %d: %s",
                               self.plugin, self.name, len(batch), exc)  # fmt: skip
                    self._count_drop(len(batch), full=False)
                    return
                _log.debug("%s queue %s: send failed (%s), retrying in %.3fs",
                           self.plugin, self.name, exc, delay)  # fmt: skip
                await asyncio.sleep(delay)
                delay = min(delay * 2, limits.max_retry_delay)
