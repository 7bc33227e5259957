"""Keep CPython's garbage collector off the big, long-lived configuration objects.

A node with thousands of routes holds around a million GC-tracked objects (entity models,
snapshot objects, router tables), and every apply allocates enough for CPython to start a
full collection that walks all of them: a third of a second with 10,000 routes, on the
event loop, at nearly every apply.  After each apply ``HeapFreezer`` freezes the heap
(``gc.freeze``): later collections walk only what was allocated since, and objects freed
by reference counting (nearly all of them: snapshot objects hold no cycles) are still freed.
Reference cycles that die while frozen are not, so every ``full_every`` applies the heap is
unfrozen and collected once, then frozen again.  Small configs (under ``min_entities``) are
left alone: their collections are cheap, and test processes keep Python's usual behaviour.
"""

from __future__ import annotations

import gc


class HeapFreezer:
    """Call ``after_apply`` once a new config runs."""

    def __init__(self, *, min_entities: int = 2000, full_every: int = 64) -> None:
        self._min_entities = min_entities
        self._full_every = full_every
        self._applies = 0

    def after_apply(self, entities: int) -> None:
        """``entities``: the size of the config now running (routes, services …)."""
        if entities < self._min_entities:
            return
        self._applies += 1
        if self._applies % self._full_every == 0:
            gc.unfreeze()
            gc.collect()
        gc.freeze()
