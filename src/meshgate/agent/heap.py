"""Keep CPython's garbage collector off the big, long-lived configuration objects.

A node with thousands of routes holds around a million GC-tracked objects (entity models,
snapshot objects, router tables), and every apply allocates enough for CPython to start a
full collection that walks all of them: a third of a second with 10,000 routes, on the
event loop, at nearly every apply.  After each apply ``HeapFreezer`` freezes the heap
(``gc.freeze``): later collections walk only what was allocated since, and objects freed
by reference counting (nearly all of them: snapshot objects hold no cycles) are still freed.
Reference cycles that die while frozen are not, so once ``full_every`` applies have been made
and ``full_interval`` seconds have passed since the last time, the heap is unfrozen and
collected once, then frozen again: that collection stalls the process (a third of a second at
10,000 routes), so it is rare even when applies come in bursts.  Small configs (under
``min_entities``) are left alone: their collections are cheap, and test processes keep
Python's usual behaviour.
"""

from __future__ import annotations

import gc
import time


class HeapFreezer:
    """Call ``after_apply`` once a new config runs."""

    def __init__(
        self, *, min_entities: int = 2000, full_every: int = 64, full_interval: float = 300.0
    ) -> None:
        self._min_entities = min_entities
        self._full_every = full_every
        self._full_interval = full_interval
        self._applies = 0
        self._last_full = time.monotonic()

    def after_apply(self, entities: int) -> None:
        """``entities``: the size of the config now running (routes, services …)."""
        if entities < self._min_entities:
            return
        self._applies += 1
        now = time.monotonic()
        if self._applies >= self._full_every and now - self._last_full >= self._full_interval:
            self._applies = 0
            self._last_full = now
            gc.unfreeze()
            gc.collect()
        gc.freeze()
