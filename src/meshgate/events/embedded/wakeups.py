"""Long-poll support: readers wait on futures per partition, the flush round resolves them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence

TopicPartition = tuple[str, int]


class Wakeups:
    """``wait`` until a partition's high watermark passes a position; ``wake`` after a flush."""

    def __init__(self, high_watermark: Callable[[TopicPartition], int | None]) -> None:
        self._high_watermark = high_watermark
        self._waiters: dict[TopicPartition, set[asyncio.Future[None]]] = {}

    def _has_data(
        self, keys: Sequence[TopicPartition], positions: Mapping[TopicPartition, int]
    ) -> bool:
        for key in keys:
            high = self._high_watermark(key)
            if high is None or high > positions.get(key, 0):
                return True  # data, or the partition is gone: stop waiting either way
        return False

    async def wait(
        self,
        keys: Sequence[TopicPartition],
        positions: Mapping[TopicPartition, int],
        timeout: float,
        wake: asyncio.Future[None] | None = None,
    ) -> None:
        """Return when one of ``keys`` has data past its position, ``wake`` fires, or timeout."""
        if self._has_data(keys, positions):
            return
        waiter = wake if wake is not None else asyncio.get_running_loop().create_future()
        for key in keys:
            self._waiters.setdefault(key, set()).add(waiter)
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(waiter)
        except TimeoutError:
            pass
        finally:
            for key in keys:
                waiting = self._waiters.get(key)
                if waiting is not None:
                    waiting.discard(waiter)
                    if not waiting:
                        del self._waiters[key]

    def wake(self, key: TopicPartition) -> None:
        for waiter in self._waiters.pop(key, set()):
            if not waiter.done():
                waiter.set_result(None)

    def wake_all(self) -> None:
        for key in list(self._waiters):
            self.wake(key)
