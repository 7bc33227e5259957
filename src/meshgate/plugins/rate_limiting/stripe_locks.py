"""The per-stripe locks of the node's counter file: robust process-shared pthread mutexes kept
in the file itself, taken through ``ctypes`` (about 0.7 µs a lock+unlock pair on the dev VM,
no system call when uncontended), or ``fcntl.lockf`` byte-range locks where the C library
lacks them (4-6 µs a pair: two system calls).

Why a *robust* mutex: a worker killed while holding a stripe must not wedge the node.  The
kernel hands a robust mutex held by a dead thread to the next locker with ``EOWNERDEAD``;
``acquire`` then marks it consistent and goes on (a counter the dead worker was writing may
be off by that one request, as with ``lockf``, which the kernel simply drops).

A mutex left *held* in the file by a machine that crashed (no process exit ran) would block
forever, so the mutexes are (re)initialized whenever a process opens the file and no other
process has it open: each process holds a shared ``lockf`` on a presence byte for as long as
it has the file open, and the opener (under the file's init lock) tries an exclusive one
first.  fcntl locks are per process: a second store on the same file in one process sees
itself alone (harmless: nothing holds a mutex between two calls of one thread), and closing
one drops the process's presence (a process opening the file right then would re-initialize
mutexes this one is not holding between calls either).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import mmap
from typing import Any

MUTEX_SIZE = 64  # room for a pthread_mutex_t (40 bytes on x86-64, 48 on aarch64), aligned
_PTHREAD_PROCESS_SHARED = 1
_PTHREAD_MUTEX_ROBUST = 1


def _libc_functions() -> dict[str, Any] | None:
    """The C library's pthread functions (with argument types), or None without them."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        names = (
            "pthread_mutexattr_init",
            "pthread_mutexattr_setpshared",
            "pthread_mutexattr_setrobust",
            "pthread_mutexattr_destroy",
            "pthread_mutex_init",
            "pthread_mutex_lock",
            "pthread_mutex_unlock",
            "pthread_mutex_consistent",
        )
        found = {name: getattr(libc, name) for name in names}
    except (OSError, AttributeError):
        return None
    for name, function in found.items():
        function.restype = ctypes.c_int
        function.argtypes = (
            [ctypes.c_void_p, ctypes.c_int]
            if name in ("pthread_mutexattr_setpshared", "pthread_mutexattr_setrobust")
            else [ctypes.c_void_p, ctypes.c_void_p]
            if name == "pthread_mutex_init"
            else [ctypes.c_void_p]
        )
    return found


_LIBC = _libc_functions()


def robust_mutexes_available() -> bool:
    return _LIBC is not None


class RobustMutexes:
    """``count`` mutexes at ``offset`` of a shared mapping; ``acquire``/``release`` by index."""

    def __init__(self, mapped: mmap.mmap, offset: int, count: int) -> None:
        assert _LIBC is not None
        self._view: Any = ctypes.c_char.from_buffer(mapped, offset)  # pins the mapping
        self._base = ctypes.addressof(self._view)
        self._count = count
        self._lock = _LIBC["pthread_mutex_lock"]
        self._unlock = _LIBC["pthread_mutex_unlock"]
        self._consistent = _LIBC["pthread_mutex_consistent"]
        # for a caller's hot path: ``address = addresses[i]``, ``if lock(address):
        # recover(address, result)`` ... ``unlock(address)`` = ``acquire(i)`` ... ``release(i)``
        self.addresses = [self._base + index * MUTEX_SIZE for index in range(count)]
        self.lock = self._lock
        self.unlock = self._unlock

    def initialize(self) -> None:
        """Lay out every mutex afresh (only while no other process has the file open)."""
        assert _LIBC is not None
        attr = ctypes.create_string_buffer(64)  # a pthread_mutexattr_t is 4 bytes on Linux
        _check(_LIBC["pthread_mutexattr_init"](attr), "pthread_mutexattr_init")
        try:
            _check(_LIBC["pthread_mutexattr_setpshared"](attr, _PTHREAD_PROCESS_SHARED),
                   "pthread_mutexattr_setpshared")  # fmt: skip
            _check(_LIBC["pthread_mutexattr_setrobust"](attr, _PTHREAD_MUTEX_ROBUST),
                   "pthread_mutexattr_setrobust")  # fmt: skip
            ctypes.memset(self._base, 0, self._count * MUTEX_SIZE)
            for index in range(self._count):
                _check(_LIBC["pthread_mutex_init"](self._base + index * MUTEX_SIZE, attr),
                       "pthread_mutex_init")  # fmt: skip
        finally:
            _LIBC["pthread_mutexattr_destroy"](attr)

    def acquire(self, index: int) -> None:
        address = self._base + index * MUTEX_SIZE
        result = self._lock(address)
        if result:
            self.recover(address, result)

    def recover(self, address: int, result: int) -> None:
        """After ``lock(address)`` returned ``result`` (not 0): the mutex is ours if its
        holder died, else ``OSError``."""
        if result != errno.EOWNERDEAD:
            raise OSError(result, f"pthread_mutex_lock: {errno.errorcode.get(result)}")
        self._consistent(address)  # its holder died: the mutex is ours, usable again

    def release(self, index: int) -> None:
        self._unlock(self._base + index * MUTEX_SIZE)

    def close(self) -> None:
        """Unpin the mapping (call before closing it; no lock may be taken afterwards)."""
        self._view = None


def _check(result: int, what: str) -> None:
    if result:
        raise OSError(result, f"{what}: {errno.errorcode.get(result, result)}")


class PresenceLock:
    """The shared ``lockf`` a process holds on its open counter file (see the module
    docstring); ``claim`` says whether this process is the only one with the file open."""

    def __init__(self, fd: int, offset: int) -> None:
        self._fd = fd
        self._offset = offset

    def claim(self) -> bool:
        """Take the presence lock; True when no other process holds it (call under the
        file's init lock, so that two openers cannot both see themselves alone)."""
        try:
            fcntl.lockf(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, self._offset)
        except OSError as err:
            if err.errno not in (errno.EACCES, errno.EAGAIN):
                raise
            fcntl.lockf(self._fd, fcntl.LOCK_SH, 1, self._offset)
            return False
        fcntl.lockf(self._fd, fcntl.LOCK_SH, 1, self._offset)  # downgrade: others may join
        return True
