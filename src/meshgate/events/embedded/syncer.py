"""The event loop's side of the embedded log's fsync process (``sync_child``).

``FsyncProcess.start`` launches the child with one end of a ``SOCK_SEQPACKET`` pair and reads
the other end with ``loop.add_reader``. ``sync(targets, done)`` sends one request (the
descriptors are duplicated into the child, which closes its copies) and calls ``done(errnos)``
on the loop when the answer arrives; one request is in flight at a time. If the child exits or
the socket fails, ``done`` gets None and the process is ``lost`` for good: the caller goes back
to syncing on its writer thread. Nothing here blocks the loop: the child does the waiting.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import logging
import socket
import struct
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from meshgate.events.embedded.sync_child import MAX_FDS, SEQ

_log = logging.getLogger("meshgate.events.embedded")
CHILD = Path(__file__).with_name("sync_child.py")

Done = Callable[["list[int] | None"], None]
# (file descriptor, full fsync?) — a directory needs fsync, a segment only fdatasync
SyncTarget = tuple[int, bool]


class FsyncProcess:
    """See the module docstring."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket,
                 process: subprocess.Popen[bytes]) -> None:  # fmt: skip
        self._loop = loop
        self._sock = sock
        self._process = process
        self.ready = False  # the child said so; until then callers sync on their own
        self.lost: str | None = None
        self._seq = 0
        self._done: Done | None = None
        self._started: asyncio.Future[None] = loop.create_future()  # ready, or lost
        loop.add_reader(sock.fileno(), self._readable)

    @classmethod
    def start(cls, loop: asyncio.AbstractEventLoop) -> FsyncProcess | None:
        """The child, started (not yet ready); None, logged, when it cannot be started."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            process = subprocess.Popen(
                [sys.executable, "-I", "-S", str(CHILD), str(theirs.fileno())],
                pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL,
            )  # fmt: skip
        except OSError as exc:
            ours.close()
            _log.warning("cannot start the event log's fsync process (%s): fsync on a thread", exc)
            return None
        finally:
            theirs.close()
        ours.setblocking(False)
        return cls(loop, ours, process)

    async def wait_ready(self, timeout: float) -> bool:
        """Wait (bounded) until the child said ready; False if it did not (yet)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._started), timeout)
        return self.ready and self.lost is None

    @property
    def usable(self) -> bool:
        return self.ready and self.lost is None and self._done is None

    def sync(self, targets: Sequence[SyncTarget], done: Done) -> bool:
        """Send one request; False (nothing sent) when not ``usable`` or too many targets."""
        if not self.usable or not targets or len(targets) > MAX_FDS:
            return False
        self._seq += 1
        body = SEQ.pack(self._seq) + bytes(ord("f") if full else ord("d") for _, full in targets)
        fds = array.array("i", [fd for fd, _ in targets])
        try:
            self._sock.sendmsg([body], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
        except OSError as exc:
            self._lose(f"cannot reach the fsync process: {exc}")
            return False
        self._done = done
        return True

    def _readable(self) -> None:
        try:
            message = self._sock.recv(SEQ.size + 4 * MAX_FDS)
        except BlockingIOError:
            return
        except OSError as exc:
            self._lose(f"fsync process socket failed: {exc}")
            return
        if not message:
            self._lose(f"the fsync process exited (code {self._process.poll()})")
            return
        if not self.ready:
            self.ready = message == b"ready"
            if not self.ready:
                self._lose(f"the fsync process said {message[:32]!r} instead of ready")
            elif not self._started.done():
                self._started.set_result(None)
            return
        seq = SEQ.unpack_from(message)[0]
        if self._done is None or seq != self._seq:
            self._lose(f"the fsync process answered request {seq}, not {self._seq}")
            return
        done, self._done = self._done, None
        count = (len(message) - SEQ.size) // 4
        done(list(struct.unpack_from(f">{count}i", message, SEQ.size)))

    def _lose(self, reason: str, *, error: bool = True) -> None:
        """Give the child up for good: its socket closed, a request in flight answered None."""
        if self.lost is None:
            self.lost = reason
            if error:
                _log.error("%s; the event log syncs on its writer thread from now on", reason)
        if not self._started.done():
            self._started.set_result(None)
        with contextlib.suppress(Exception):  # already closed: its fileno is -1
            self._loop.remove_reader(self._sock.fileno())
        self._sock.close()
        done, self._done = self._done, None
        if done is not None:
            done(None)

    async def close(self) -> None:
        """Stop the child (it exits when its socket closes) and reap it off the loop."""
        self._lose("closed", error=False)
        await self._loop.run_in_executor(None, self._reap)

    def _reap(self) -> None:
        try:
            self._process.wait(5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
