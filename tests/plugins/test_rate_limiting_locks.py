"""rate-limiting: the stripe locks of the node's counter file — robust pthread mutexes (a
holder that dies does not wedge the node; a file left by a crash gets fresh mutexes) and the
``lockf`` fallback (same counts)."""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path

import pytest
from rate_limiting_procs import hit, hold_stripe_and_die

from meshgate.plugins.rate_limiting import stripe_locks
from meshgate.plugins.rate_limiting.shared_counters import (
    HEADER_SIZE,
    CounterStore,
    group_hash,
)
from meshgate.plugins.rate_limiting.stripe_locks import MUTEX_SIZE

needs_mutexes = pytest.mark.skipif(
    not stripe_locks.robust_mutexes_available(),
    reason="the C library has no robust process-shared pthread mutexes (not glibc/Linux): the "
    "store uses lockf there, which test_the_lockf_fallback_counts_the_same covers",
)


def _stripe_of(store: CounterStore, key: str) -> int:
    return group_hash(key) % store.stripes


def _hit_within(store: CounterStore, key: str, seconds: float) -> bool | None:
    """``hit`` in a thread; None when it is still blocked after ``seconds``."""
    result: list[bool] = []
    worker = threading.Thread(target=lambda: result.append(hit(store, key, 100)), daemon=True)
    worker.start()
    worker.join(seconds)
    return result[0] if result else None


@needs_mutexes
def test_a_shared_store_locks_with_robust_mutexes(tmp_path: Path) -> None:
    store = CounterStore(tmp_path / "c")
    assert store._mutexes is not None
    assert store.data_start == HEADER_SIZE + 4096  # 64 stripes x 64 bytes of mutexes
    assert [hit(store, "a", 2) for _ in range(3)] == [True, True, False]
    store.close()
    assert CounterStore(None)._mutexes is None  # private memory: one process, no lock


@needs_mutexes
def test_a_worker_dying_with_the_lock_does_not_wedge_the_node(tmp_path: Path) -> None:
    path = str(tmp_path / "c")
    store = CounterStore(path)
    stripe = _stripe_of(store, "tenant")
    spawn = multiprocessing.get_context("spawn")
    out = spawn.Queue()
    child = spawn.Process(target=hold_stripe_and_die, args=(path, stripe, out))
    child.start()
    assert out.get(timeout=30) == "holding"
    child.join(30)
    assert child.exitcode == 0
    # the child died holding the stripe: the next locker gets it (EOWNERDEAD), and again after
    assert _hit_within(store, "tenant", 10) is True
    assert _hit_within(store, "tenant", 10) is True
    store.close()


@needs_mutexes
def test_a_file_opened_by_no_one_else_gets_fresh_mutexes(tmp_path: Path) -> None:
    """A mutex left held in the file (a machine that crashed mid-request) is re-initialized
    by the next process that opens the file alone; one opened while another process holds
    the file keeps its mutexes (they may be held right now)."""
    path = tmp_path / "c"
    store = CounterStore(path)
    stripe = _stripe_of(store, "tenant")
    at = HEADER_SIZE + stripe * MUTEX_SIZE
    free = bytes(store._map[at : at + MUTEX_SIZE])
    store._acquire(stripe)
    held = bytes(store._map[at : at + MUTEX_SIZE])
    store._release(stripe)
    store.close()
    assert held != free
    with open(path, "r+b") as raw:  # as a crash would leave it: held by a thread now gone
        raw.seek(at)
        raw.write(held)
    reopened = CounterStore(path)
    assert bytes(reopened._map[at : at + MUTEX_SIZE]) == free
    assert _hit_within(reopened, "tenant", 10) is True
    reopened.close()


def test_the_lockf_fallback_counts_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        "meshgate.plugins.rate_limiting.shared_counters.robust_mutexes_available", lambda: False
    )
    store = CounterStore(tmp_path / "c")
    assert store._mutexes is None
    assert store._fd >= 0
    assert [hit(store, "a", 2) for _ in range(3)] == [True, True, False]
    other = CounterStore(tmp_path / "c")  # the same file: the same counters
    assert not hit(other, "a", 2)
    other.close()
    store.close()
