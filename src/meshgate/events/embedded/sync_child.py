"""The embedded log's fsync process: syncs the file descriptors it is handed, answers errnos.

Run by ``syncer.FsyncProcess`` as ``python -I -S sync_child.py FD`` (standard library only, so
it starts in milliseconds and imports nothing of meshgate). ``FD`` is its end of an
``AF_UNIX``/``SOCK_SEQPACKET`` socket pair. It says ``ready``, then serves one request at a
time: a message ``seq:u64`` + one kind byte per descriptor (``d`` fdatasync, ``f`` fsync) with
the descriptors attached (``SCM_RIGHTS``); it syncs and closes each and answers ``seq:u64`` +
one ``errno:i32`` per descriptor (0 = durable). It exits when the socket closes (its parent
closed the log, or died).

Why a process: a writer *thread* has to win the GIL back from a busy event loop after every
write and fsync, and under load it loses the race again and again (each loss is a futex wake
for the loop and a context switch for the thread). This process holds no GIL of the loop's.
"""

from __future__ import annotations

import array
import errno
import os
import socket
import struct
import sys

MAX_FDS = 200  # below the kernel's SCM_MAX_FD (253)
SEQ = struct.Struct(">Q")  # a request's number, echoed in its answer


def serve(sock: socket.socket) -> None:
    """Answer requests until the socket closes (then close it)."""
    with sock:
        _serve(sock)


def _serve(sock: socket.socket) -> None:
    sock.send(b"ready")
    ancillary_size = socket.CMSG_SPACE(MAX_FDS * array.array("i").itemsize)
    while True:
        try:
            message, ancillary, _flags, _addr = sock.recvmsg(SEQ.size + MAX_FDS, ancillary_size)
        except OSError:
            return
        if not message:
            return
        fds = array.array("i")
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
        kinds = message[SEQ.size :]
        errnos = [_sync(fd, kind) for fd, kind in zip(fds, kinds, strict=False)]
        for fd in fds:
            os.close(fd)
        errnos += [errno.EINVAL] * (len(kinds) - len(errnos))  # a kind arrived without its fd
        try:
            sock.send(message[: SEQ.size] + struct.pack(f">{len(errnos)}i", *errnos))
        except OSError:  # the parent is gone
            return


def _sync(fd: int, kind: int) -> int:
    try:
        if kind == ord("f"):
            os.fsync(fd)
        else:
            os.fdatasync(fd)
    except OSError as exc:
        return exc.errno or errno.EIO
    return 0


if __name__ == "__main__":
    serve(socket.socket(fileno=int(sys.argv[1])))
