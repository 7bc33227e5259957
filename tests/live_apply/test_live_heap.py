"""``HeapFreezer`` freezes the heap after applies of big configs only, and unfreezes and
collects after ``full_every`` applies and ``full_interval`` seconds, so that dead reference
cycles are reclaimed without stalling every burst of applies."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from meshgate.agent.heap import HeapFreezer


@pytest.fixture
def thawed() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


@pytest.mark.usefixtures("thawed")
def test_small_configs_leave_the_collector_alone() -> None:
    HeapFreezer(min_entities=100).after_apply(99)
    assert gc.get_freeze_count() == 0


@pytest.mark.usefixtures("thawed")
def test_big_configs_freeze_and_periodically_collect() -> None:
    class Node:
        other: object = None

    a, b = Node(), Node()
    a.other, b.other = b, a
    alive = weakref.ref(a)
    freezer = HeapFreezer(min_entities=100, full_every=3, full_interval=0.0)
    freezer.after_apply(100)  # the cycle is frozen ...
    assert gc.get_freeze_count() > 0
    del a, b  # ... and dies: collections do not see it
    gc.collect()
    assert alive() is not None
    freezer.after_apply(100)
    assert alive() is not None
    freezer.after_apply(100)  # the third: unfreeze, collect, freeze again
    assert alive() is None


@pytest.mark.usefixtures("thawed")
def test_a_burst_of_applies_is_not_stalled_by_more_than_one_collection() -> None:
    class Node:
        other: object = None

    freezer = HeapFreezer(min_entities=100, full_every=2, full_interval=3600.0)
    a, b = Node(), Node()
    a.other, b.other = b, a
    alive = weakref.ref(a)
    freezer.after_apply(100)
    del a, b
    for _ in range(10):  # many applies, but the interval has not passed: no full collection
        freezer.after_apply(100)
    assert alive() is not None
    gc.unfreeze()
    gc.collect()
    assert alive() is None
