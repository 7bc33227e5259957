"""Coarse timeouts without a timer per request: connections carry a ``deadline`` and one
periodic sweep (every ``resolution`` seconds) calls ``on_deadline`` on those past it.

Moving a deadline is one float store; a timeout fires at most ``resolution`` late.  The
sweeper also keeps ``now``, the loop's cached clock: each socket read refreshes it once and
everything computed during that callback (deadlines, latencies) reads it instead of calling
``time.monotonic`` again.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

monotonic = time.monotonic


class HasDeadline(Protocol):
    deadline: float  # monotonic seconds; 0 = none

    def on_deadline(self, now: float) -> None: ...


class Sweeper:
    """Watches objects with deadlines; ticks only while it watches something."""

    __slots__ = ("_handle", "_items", "_loop", "now", "resolution")

    def __init__(self, loop: asyncio.AbstractEventLoop, resolution: float) -> None:
        self._loop = loop
        self.resolution = resolution
        self._items: set[HasDeadline] = set()
        self._handle: asyncio.TimerHandle | None = None
        self.now = monotonic()

    def add(self, item: HasDeadline) -> None:
        self._items.add(item)
        if self._handle is None:
            self._handle = self._loop.call_later(self.resolution, self._tick)

    def discard(self, item: HasDeadline) -> None:
        self._items.discard(item)

    def _tick(self) -> None:
        self._handle = None
        self.now = now = monotonic()
        for item in [i for i in self._items if 0 < i.deadline <= now]:
            item.on_deadline(now)
        if self._items:
            self._handle = self._loop.call_later(self.resolution, self._tick)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
