"""Fan-out of the store revision to ``subscribe()`` iterators.

A backend publishes every revision it learns of: its own commits right away, and other
processes' commits from its watcher (SQLite polls, PostgreSQL listens). Subscribers see the
latest revision, coalesced: a slow subscriber skips straight to the newest one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine
from typing import Any

from meshgate.tasks import spawn


class RevisionFeed:
    """Latest known revision plus wake-ups; the watcher task starts with the first subscriber."""

    def __init__(
        self,
        name: str,
        read_revision: Callable[[], Awaitable[int]],
        watcher: Callable[[], Coroutine[Any, Any, None]],
    ) -> None:
        self._name = name
        self._read_revision = read_revision
        self._watcher_factory = watcher
        self._watcher: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self._closed = False
        self.latest = 0

    def publish(self, revision: int) -> None:
        if revision <= self.latest:
            return
        self.latest = revision
        self._changed.set()
        self._changed = asyncio.Event()

    async def subscribe(self) -> AsyncGenerator[int, None]:
        if self._closed:
            return
        if self._watcher is None or self._watcher.done():
            self._watcher = spawn(self._watcher_factory(), name=f"{self._name}-watch")
        self.publish(await self._read_revision())
        last = self.latest
        yield last
        while not self._closed:
            if self.latest <= last:
                await self._changed.wait()
                continue
            last = self.latest
            yield last

    async def close(self) -> None:
        self._closed = True
        self._changed.set()
        if self._watcher is not None:
            self._watcher.cancel()
            try:
                await self._watcher
            except asyncio.CancelledError:
                pass
            self._watcher = None
