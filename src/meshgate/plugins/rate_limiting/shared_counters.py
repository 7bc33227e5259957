"""Node-wide rate-limit counters: one memory-mapped file shared by a node's worker processes.

The ``local`` policy must be exact across the N workers of one ``meshgate run``, so its counters
live in a file under the node's runtime directory that every worker maps.  A *check-and-count*
(``CounterStore.hit``) looks at the counters of every limited period of one identifier and, only
when none is exhausted, adds one to each — all inside one critical section, so N concurrent
requests against a limit L let exactly L through, whatever worker they land on.

Layout: a 4 KiB header (magic, version, geometry), one lock per stripe (64 bytes each, the
area rounded up to 4 KiB), then ``stripes x slots_per_stripe`` slots of 32 bytes:
``fingerprint u64 | window_start i64 | expires i64 | count i64``.

* Placement: an identifier's *group hash* picks a stripe; every period of that identifier lives
  in that stripe, so one request takes one lock.  Inside the stripe a period's fingerprint
  picks a start slot, then up to ``PROBES`` slots are probed linearly.  A probe stops at a
  never-used slot (fingerprint 0), so a key is found wherever it was inserted.
* Windows: a slot keeps the start of the window it counts; a request for a newer window finds
  its slot by fingerprint and starts the count again at zero.
* Reuse: a slot whose ``expires`` has passed is free for any key (expired windows are evicted
  lazily, no sweeper).  When every probed slot holds a live counter of other keys, the one
  expiring first is evicted (``evictions`` counts it: a sign the table is too small; size it
  with ``MESHGATE_RATELIMIT_SLOTS``).  Fingerprints are 64-bit hashes: two keys sharing one
  (about 1 in 2**64 per pair) would share a counter.
* Locking (``stripe_locks``): a robust process-shared pthread mutex per stripe, in the file,
  through ``ctypes``.  Measured on the 2-core dev VM (a syscall costs ~1.4 µs there): 0.7 µs
  per lock+unlock pair, against 4.5-6 µs for the ``fcntl.lockf`` byte-range pair used before
  (two system calls), flock on per-stripe files 2.2-3.5 µs, a POSIX semaphore (``posix_ipc``)
  0.5 µs.  Robust, a mutex whose holder died passes to the next locker, so a worker killed
  mid-request cannot wedge the node (a semaphore would stay taken); no PyPI dependency.
  Without the pthread functions the stripes fall back to ``lockf`` on one byte per stripe (a
  byte range past the data, advisory only).  Python has no atomic add, so some lock is
  unavoidable.

Without a node id (``MESHGATE_NODE_ID`` unset: tests, embedding) the store is per-process
anonymous memory and takes no lock.

With the compiled engine (``make native``), ``hit`` runs in ``counter_kernel`` (C: the same
table and semantics, the mutex taken without ctypes); this module's ``hit`` is the reference
and runs wherever the kernel is not built or the stripes use ``lockf``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib
import mmap
import os
import struct
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from meshgate import _native

from .stripe_locks import MUTEX_SIZE, PresenceLock, RobustMutexes, robust_mutexes_available

MAGIC = b"MGRL"
VERSION = 2  # 2: a mutex area after the header (1: lockf only)
HEADER_SIZE = 4096
SLOT = struct.Struct("<Qqqq")  # fingerprint, window_start, expires, count
SLOT_SIZE = SLOT.size
PROBES = 8
DEFAULT_STRIPES = 64
DEFAULT_SLOTS = 65536  # 2 MiB of slots
_GEOMETRY = struct.Struct("<4sIII")  # magic, version, stripes, slots_per_stripe
_LOCK_BASE = 1 << 40  # lock bytes live far past the data
_INIT_LOCK = _LOCK_BASE - 1
_PRESENCE_LOCK = _LOCK_BASE - 2
_MASK64 = (1 << 64) - 1
_MIX = 0x9E3779B97F4A7C15
_unpack_from = SLOT.unpack_from
_pack_into = SLOT.pack_into


def _kernel_module() -> Any:
    """``counter_kernel`` when the compiled engine runs and it was built, else None."""
    if _native.engine != "compiled":
        return None
    try:
        kernel = importlib.import_module("meshgate.plugins.rate_limiting.counter_kernel")
    except ImportError:
        return None
    layout = (kernel.SLOT_SIZE, kernel.PROBES, kernel.MUTEX_SIZE)
    if layout != (SLOT_SIZE, PROBES, MUTEX_SIZE):  # the table's layout is defined twice
        raise RuntimeError(f"counter_kernel's slot/probe/mutex sizes {layout} differ from Python's")
    return kernel


_KERNEL = _kernel_module()


def group_hash(text: str) -> int:
    """A process-independent 64-bit hash (``hash()`` is salted per process)."""
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def period_fingerprint(group: int, period_index: int) -> int:
    """The fingerprint of one period's counter of an identifier (never 0: 0 marks unused)."""
    fingerprint = ((group ^ ((period_index + 1) * _MIX)) * 0xFF51AFD7ED558CCD) & _MASK64
    return fingerprint or 1


def default_path() -> Path | None:
    """Where this node's counter file lives; ``None`` (per-process memory) without a node id."""
    node_id = os.environ.get("MESHGATE_NODE_ID")
    if not node_id:
        return None
    base = os.environ.get("MESHGATE_RUNTIME_DIR") or str(
        Path(tempfile.gettempdir()) / f"meshgate-{os.getuid()}"
    )
    safe_id = "".join(c if c.isalnum() or c in "-_." else "_" for c in node_id)
    return Path(base) / f"rate-limiting-{safe_id}.v{VERSION}.counters"


def lock_area(stripes: int) -> int:
    """Bytes between the header and the slots: one mutex per stripe, in whole pages."""
    return -(-stripes * MUTEX_SIZE // 4096) * 4096


def _slots_from_env() -> int:
    raw = os.environ.get("MESHGATE_RATELIMIT_SLOTS")
    if not raw:
        return DEFAULT_SLOTS
    try:
        return max(DEFAULT_STRIPES * PROBES, int(raw))
    except ValueError:
        return DEFAULT_SLOTS


class CounterStore:
    """Fixed-size counter table in shared (file) or private (anonymous) memory."""

    def __init__(
        self,
        path: str | os.PathLike[str] | None,
        *,
        slots: int | None = None,
        stripes: int = DEFAULT_STRIPES,
        kernel: bool = True,
    ) -> None:
        """``kernel=False``: always the Python ``hit`` (tests compare the two)."""
        total = slots if slots is not None else _slots_from_env()
        per_stripe = max(PROBES, total // stripes)
        self.path = Path(path) if path is not None else None
        self.evictions = 0
        self._fd = -1
        # how a stripe is locked: robust mutexes in the file, else lockf, else (private
        # memory, one process) not at all
        self._mutexes: RobustMutexes | None = None
        if self.path is None:
            self.stripes, self.per_stripe = stripes, per_stripe
            self.data_start = HEADER_SIZE
            self._map = mmap.mmap(-1, HEADER_SIZE + stripes * per_stripe * SLOT_SIZE)
        else:
            self._map = self._open_shared(self.path, stripes, per_stripe)
        self._kernel: Any = self._native_table() if kernel else None

    def _native_table(self) -> Any:
        """The C hit's view of the table: with robust mutexes or no lock at all (stripes
        locked with lockf stay in Python).  A method of its own: compiled code would trust
        ``__init__``'s narrowing of ``_mutexes`` to None across ``_open_shared``."""
        if _KERNEL is None or (self.path is not None and self._mutexes is None):
            return None
        mutexes = HEADER_SIZE if self._mutexes is not None else -1
        return _KERNEL.Table(self._map, self.data_start, self.stripes, self.per_stripe, mutexes)

    def _open_shared(self, path: Path, stripes: int, per_stripe: int) -> mmap.mmap:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX, 1, _INIT_LOCK)
            try:
                alone = PresenceLock(fd, _PRESENCE_LOCK).claim()
                head = os.pread(fd, _GEOMETRY.size, 0)
                fresh = not (len(head) == _GEOMETRY.size and head[:4] == MAGIC)
                if not fresh:
                    _, version, stripes, per_stripe = _GEOMETRY.unpack(head)
                    if version != VERSION:
                        raise RuntimeError(f"{path}: counter file version {version} != {VERSION}")
                self.stripes, self.per_stripe = stripes, per_stripe
                self.data_start = HEADER_SIZE + lock_area(stripes)
                size = self.data_start + stripes * per_stripe * SLOT_SIZE
                if fresh:  # first worker of the node: lay the file out
                    os.ftruncate(fd, 0)
                    os.ftruncate(fd, size)
                mapped = mmap.mmap(fd, size)
                try:
                    if robust_mutexes_available():
                        self._mutexes = RobustMutexes(mapped, HEADER_SIZE, stripes)
                        if fresh or alone:
                            self._mutexes.initialize()
                    if fresh:  # the geometry last: a file with it is whole
                        os.pwrite(fd, _GEOMETRY.pack(MAGIC, VERSION, stripes, per_stripe), 0)
                except BaseException:
                    self._mutexes = None
                    with contextlib.suppress(BufferError):
                        mapped.close()
                    raise
            finally:
                fcntl.lockf(fd, fcntl.LOCK_UN, 1, _INIT_LOCK)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return mapped

    def close(self) -> None:
        if self._kernel is not None:
            self._kernel.release()
            self._kernel = None
        if self._mutexes is not None:
            self._mutexes.close()
            self._mutexes = None
        with contextlib.suppress(BufferError):
            self._map.close()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _acquire(self, stripe: int) -> None:
        mutexes = self._mutexes
        if mutexes is not None:
            mutexes.acquire(stripe)
        elif self._fd >= 0:
            fcntl.lockf(self._fd, fcntl.LOCK_EX, 1, _LOCK_BASE + stripe)

    def _release(self, stripe: int) -> None:
        mutexes = self._mutexes
        if mutexes is not None:
            mutexes.release(stripe)
        elif self._fd >= 0:
            fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, _LOCK_BASE + stripe)

    # ------------------------------------------------------------------ the hot path

    def placement(self, group: int, fingerprints: Sequence[int]) -> tuple[int, list[int]]:
        """The stripe of an identifier's group hash and the home slot offset of each period
        (callers cache both per identifier)."""
        stripe = group % self.stripes
        per_stripe = self.per_stripe
        base = self.data_start + stripe * per_stripe * SLOT_SIZE
        return stripe, [base + ((fp >> 20) % per_stripe) * SLOT_SIZE for fp in fingerprints]

    def hit(
        self,
        stripe: int,
        fingerprints: Sequence[int],
        homes: Sequence[int],
        windows: Sequence[int],
        expires: Sequence[int],
        limits: Sequence[float],
        now: int,
    ) -> tuple[list[int], int]:
        """Check-and-count one request against the periods of one identifier.

        ``stripe``/``homes`` come from ``placement``; ``fingerprints[i]`` (from
        ``period_fingerprint``) counts window ``windows[i]`` (its start, epoch seconds), which
        may be forgotten after ``expires[i]``.  Returns the usage of each period *before* this
        request and the index of the first exhausted period (usage >= limit; nothing counted)
        or -1 (every period counted).
        """
        kernel = self._kernel
        if kernel is not None:
            counted, first_stop, evicted = kernel.hit(
                stripe, fingerprints, homes, windows, expires, limits, now
            )
            if evicted:
                self.evictions += evicted
            return counted, first_stop
        mutexes = self._mutexes
        address = 0
        if mutexes is not None:
            address = mutexes.addresses[stripe]  # = mutexes.acquire(stripe), inlined
            result = mutexes.lock(address)
            if result:
                mutexes.recover(address, result)
        else:
            self._acquire(stripe)
        try:
            mem = self._map
            unpack = _unpack_from
            offsets: list[int] = []
            kept: list[int] = []
            usage: list[int] = []
            stop = -1
            for i in range(len(fingerprints)):
                fingerprint, window, offset = fingerprints[i], windows[i], homes[i]
                slot_fp, slot_window, _, count = unpack(mem, offset)
                if slot_fp == fingerprint:  # the usual case: found at home
                    if slot_window < window:
                        count, slot_window = 0, window
                else:
                    offset, count, slot_window = self._locate(
                        mem, offset, fingerprint, window, now, offsets
                    )
                offsets.append(offset)
                kept.append(slot_window)
                usage.append(count)
                if stop < 0 and limits[i] - count <= 0:
                    stop = i
            if stop < 0:
                pack = _pack_into
                for i, offset in enumerate(offsets):
                    pack(mem, offset, fingerprints[i], kept[i], expires[i], usage[i] + 1)
            return usage, stop
        finally:
            if mutexes is not None:
                mutexes.unlock(address)
            else:
                self._release(stripe)

    def _locate(
        self,
        mem: mmap.mmap,
        home: int,
        fingerprint: int,
        window: int,
        now: int,
        taken: Sequence[int],
    ) -> tuple[int, int, int]:
        """The slot for ``fingerprint`` probing from ``home``: its offset, its count in
        ``window`` (0 for a new key or a past window) and the window to keep (a worker that
        read the clock just before a boundary must not take the slot back to the window
        another one already moved on to)."""
        stripe_size = self.per_stripe * SLOT_SIZE
        base = home - (home - self.data_start) % stripe_size
        first = home - base
        free = -1
        victim, victim_expires = -1, 0
        for probe in range(PROBES):
            offset = base + (first + probe * SLOT_SIZE) % stripe_size
            slot_fp, slot_window, slot_expires, count = _unpack_from(mem, offset)
            if slot_fp == fingerprint:
                if slot_window >= window:
                    return offset, count, slot_window
                return offset, 0, window
            if offset in taken:
                continue
            if slot_fp == 0:
                return (free if free >= 0 else offset), 0, window
            if free < 0:
                if slot_expires <= now:
                    free = offset
                elif victim < 0 or slot_expires < victim_expires:
                    victim, victim_expires = offset, slot_expires
        if free >= 0:
            return free, 0, window
        self.evictions += 1
        return victim, 0, window

    def counts(
        self,
        stripe: int,
        fingerprints: Sequence[int],
        homes: Sequence[int],
        windows: Sequence[int],
        now: int,
    ) -> list[int]:
        """The count of each period's window (0 when absent), counting nothing."""
        self._acquire(stripe)
        try:
            mem = self._map
            out: list[int] = []
            for i in range(len(fingerprints)):
                slot_fp, slot_window, _, count = _unpack_from(mem, homes[i])
                if slot_fp != fingerprints[i]:
                    offset, count, slot_window = self._locate(
                        mem, homes[i], fingerprints[i], windows[i], now, ()
                    )
                    slot_fp = _unpack_from(mem, offset)[0]
                    if slot_fp != fingerprints[i]:
                        count = 0
                out.append(count if slot_window >= windows[i] else 0)
            return out
        finally:
            self._release(stripe)

    def add(
        self,
        stripe: int,
        fingerprints: Sequence[int],
        homes: Sequence[int],
        windows: Sequence[int],
        expires: Sequence[int],
        amount: int,
        now: int,
    ) -> None:
        """Add ``amount`` to each period's window counter (no limit is checked)."""
        self._acquire(stripe)
        try:
            mem = self._map
            taken: list[int] = []
            for i in range(len(fingerprints)):
                offset, count, kept = self._locate(
                    mem, homes[i], fingerprints[i], windows[i], now, taken
                )
                taken.append(offset)
                _pack_into(mem, offset, fingerprints[i], kept, expires[i], count + amount)
        finally:
            self._release(stripe)

    # ------------------------------------------------------------------ inspection

    def peek(self, group: int, fingerprint: int, window: int) -> int:
        """The count of one period's window (tests, diagnostics); 0 when absent."""
        _, (home,) = self.placement(group, (fingerprint,))
        offset, count, kept = self._locate(self._map, home, fingerprint, window, 0, ())
        slot_fp = SLOT.unpack_from(self._map, offset)[0]
        return count if slot_fp == fingerprint and kept == window else 0


def open_node_store() -> CounterStore:
    """This process's view of the node's counter store (the file at ``default_path()``, or
    private memory without a node id).  Opened once per process (a node resource)."""
    return CounterStore(default_path())
