"""rate-limiting: the C check-and-count (``counter_kernel``) gives the Python ``hit``'s results
— usage, the exhausted period, evictions and the very bytes of the table — over long random
runs on crowded tables, in private memory and in a shared file with its mutexes; and it
refuses arguments that would reach outside the table."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from meshgate.plugins.rate_limiting import shared_counters
from meshgate.plugins.rate_limiting.shared_counters import (
    CounterStore,
    group_hash,
    period_fingerprint,
)

needs_kernel = pytest.mark.skipif(
    shared_counters._KERNEL is None,
    reason="counter_kernel runs with the compiled engine only (make native; the Python hit "
    "is what runs here, and every other rate-limiting test covers it)",
)

EXPIRATION = (1, 60, 3600, 86400)


def _run(store: CounterStore, seed: int, steps: int) -> list[tuple[list[int], int]]:
    """A seeded random run: many identifiers, 1-4 periods each, time moving on, small limits."""
    rng = random.Random(seed)
    now = 1_000_000
    results = []
    for _ in range(steps):
        now += rng.choice((0, 0, 0, 1, 1, 7, 90))
        group = group_hash(f"id-{rng.randrange(300)}")
        periods = sorted(rng.sample(range(4), rng.randint(1, 4)))
        fingerprints = [period_fingerprint(group, p) for p in periods]
        stripe, homes = store.placement(group, fingerprints)
        windows = [now - now % EXPIRATION[p] for p in periods]
        expires = [w + EXPIRATION[p] for w, p in zip(windows, periods, strict=True)]
        limits = [float(rng.choice((1, 2, 3, 5, 1e9))) for _ in periods]
        usage, stop = store.hit(stripe, fingerprints, homes, windows, expires, limits, now)
        results.append((list(usage), stop))
    return results


def _table(store: CounterStore) -> bytes:
    return bytes(store._map[store.data_start :])


@needs_kernel
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_kernel_counts_as_the_python_hit_in_private_memory(seed: int) -> None:
    python = CounterStore(None, slots=8 * 8, stripes=8, kernel=False)
    native = CounterStore(None, slots=8 * 8, stripes=8)
    assert python._kernel is None
    assert native._kernel is not None
    assert _run(native, seed, 4000) == _run(python, seed, 4000)
    assert native.evictions == python.evictions > 0  # the run was crowded enough to evict
    assert _table(native) == _table(python)
    python.close()
    native.close()


@needs_kernel
def test_the_kernel_counts_as_the_python_hit_in_a_shared_file(tmp_path: Path) -> None:
    python = CounterStore(tmp_path / "python", slots=16 * 8, stripes=16, kernel=False)
    native = CounterStore(tmp_path / "native", slots=16 * 8, stripes=16)
    assert native._mutexes is not None
    assert native._kernel is not None
    assert _run(native, 7, 3000) == _run(python, 7, 3000)
    assert _table(native) == _table(python)
    again = CounterStore(tmp_path / "native", kernel=False)  # another view of the same file
    assert _table(again) == _table(native)
    for store in (again, native, python):
        store.close()


@needs_kernel
def test_the_kernel_refuses_what_would_reach_outside_the_table() -> None:
    store = CounterStore(None, slots=8 * 8, stripes=8)
    group = group_hash("x")
    fp = period_fingerprint(group, 0)
    stripe, (home,) = store.placement(group, [fp])
    other = (stripe + 1) % store.stripes
    with pytest.raises(IndexError):
        store.hit(store.stripes, [fp], [home], [0], [1], [5.0], 0)
    with pytest.raises(ValueError, match="outside its stripe"):
        store.hit(other, [fp], [home], [0], [1], [5.0], 0)
    with pytest.raises(ValueError, match="outside its stripe"):
        store.hit(stripe, [fp], [home + 3], [0], [1], [5.0], 0)
    with pytest.raises(ValueError, match="differ in length"):
        store.hit(stripe, [fp], [home, home], [0], [1], [5.0], 0)
    with pytest.raises(TypeError):
        store.hit(stripe, [fp], [home], ["0"], [1], [5.0], 0)
    assert store.hit(stripe, [fp], [home], [0], [1], [5.0], 0) == ([0], -1)  # still usable
    table = store._kernel
    store.close()  # releases the table's hold on the mapping first
    with pytest.raises(ValueError, match="released"):
        table.hit(stripe, [fp], [home], [0], [1], [5.0], 0)
