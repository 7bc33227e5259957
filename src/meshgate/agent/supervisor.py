"""Run the proxy as N worker processes sharing SO_REUSEPORT listeners, or in this process.

The supervisor owns the current snapshot: it starts workers, hands each the settings and the
snapshot, waits for their acknowledgements, pushes every new snapshot to all of them, and
restarts a worker that dies (giving it the current snapshot).  A new snapshot goes out as a
delta from the one the worker runs (``agent.snapshot_diff``), encoded once for all workers;
a worker that starts, restarts or runs another version gets the whole snapshot.  ``InProcessProxy`` offers the
same interface for ``--workers 1``, where a second process would only add a hop.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import socket
import sys
from typing import Any, Protocol

from meshgate import snapshot
from meshgate.agent.frames import FrameDecoder, encode
from meshgate.agent.snapshot_diff import diff
from meshgate.proxy.http.settings import ProxySettings
from meshgate.proxy.runtime import ProxyRuntime
from meshgate.tasks import spawn

_log = logging.getLogger("meshgate.supervisor")


class ApplyError(RuntimeError):
    """A worker refused a snapshot (the running config stays in place)."""


class Proxy(Protocol):
    async def start(self, snap: snapshot.Snapshot) -> None: ...
    async def apply(self, snap: snapshot.Snapshot) -> None: ...
    async def stop(self) -> None: ...
    def ports(self) -> dict[str, int]: ...


@dataclasses.dataclass(slots=True)
class NodeOptions:
    """What every proxy process of a node is started with."""

    settings: ProxySettings
    log_level: str = "info"
    access_log: bool = True
    tls_verify_default: bool = False
    apply_timeout: float = 30.0
    drain_timeout: float = 10.0
    plugins: str = "bundled"  # Kong's ``plugins`` setting: bundled plus third-party names


def settings_to_dict(settings: ProxySettings) -> dict[str, Any]:
    """The serialisable part of ``settings`` (hooks such as ``on_access`` stay behind)."""
    return {
        f.name: getattr(settings, f.name)
        for f in dataclasses.fields(settings)
        if f.init and not callable(getattr(settings, f.name))
    }


class InProcessProxy:
    """The proxy runtime in the current process and event loop."""

    def __init__(self, options: NodeOptions) -> None:
        self._runtime = ProxyRuntime(
            options.settings, tls_verify_default=options.tls_verify_default
        )
        self._options = options

    async def start(self, snap: snapshot.Snapshot) -> None:
        await self._runtime.apply(snap)

    async def apply(self, snap: snapshot.Snapshot) -> None:
        await self._runtime.apply(snap)

    async def stop(self) -> None:
        await self._runtime.shutdown(self._options.drain_timeout)

    def ports(self) -> dict[str, int]:
        return self._runtime.bound_ports()


class _Worker:
    """The supervisor's handle on one worker process."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.process: asyncio.subprocess.Process | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.ports: dict[str, int] = {}
        self.exited = asyncio.Event()
        self.version: str | None = None  # the snapshot version the worker acknowledged last
        self.full_pushes = 0  # whole snapshots sent (the rest went as deltas)

    async def spawn(self, options: NodeOptions) -> None:
        ours, theirs = socket.socketpair()
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "meshgate.agent.worker",
            "--control-fd",
            str(theirs.fileno()),
            pass_fds=[theirs.fileno()],
        )
        theirs.close()
        self.version = None
        self.exited = asyncio.Event()
        spawn(self._reap(self.process, self.exited), name=f"worker-{self.index}-reaper")
        reader, self.writer = await asyncio.open_connection(sock=ours)
        self.replies = asyncio.Queue()
        spawn(self._read(reader), name=f"worker-{self.index}-replies")
        self.send(
            {
                "type": "settings",
                "settings": settings_to_dict(options.settings),
                "drain_timeout": options.drain_timeout,
                "log_level": options.log_level,
                "access_log": options.access_log,
                "tls_verify_default": options.tls_verify_default,
                "plugins": options.plugins,
            }
        )

    @staticmethod
    async def _reap(process: asyncio.subprocess.Process, exited: asyncio.Event) -> None:
        await process.wait()
        exited.set()
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(process.pid)  # type: ignore[no-untyped-call]

    async def _read(self, reader: asyncio.StreamReader) -> None:
        decoder = FrameDecoder()
        while data := await reader.read(1 << 16):
            for message in decoder.feed(data):
                await self.replies.put(message)
        await self.replies.put({"type": "gone"})

    def send(self, message: dict[str, Any]) -> None:
        assert self.writer is not None
        self.writer.write(encode(message))

    def send_frame(self, frame: bytes) -> None:
        assert self.writer is not None
        self.writer.write(frame)

    async def push(
        self, snap: snapshot.Snapshot, timeout: float, delta: tuple[str, bytes] | None = None
    ) -> None:
        """Make the worker run ``snap``: ``delta`` is ``(base version, encoded delta frame)``,
        used when the worker runs that base; otherwise (or if it refuses) the whole snapshot."""
        if delta is not None and self.version == delta[0]:
            self.send_frame(delta[1])
            reply = await asyncio.wait_for(self.replies.get(), timeout)
            if reply.get("type") == "ack":
                self._acknowledged(reply)
                return
            _log.info("worker %d refused a delta (%s): full snapshot", self.index, reply)
        self.full_pushes += 1
        self.send({"type": "snapshot", "snapshot": snap.to_json()})
        reply = await asyncio.wait_for(self.replies.get(), timeout)
        if reply.get("type") != "ack":
            raise ApplyError(f"worker {self.index}: {reply.get('error', reply.get('type'))}")
        self._acknowledged(reply)

    def _acknowledged(self, reply: dict[str, Any]) -> None:
        self.version = reply.get("version")
        self.ports = dict(reply.get("ports", {}))

    def alive(self) -> bool:
        return self.process is not None and not self.exited.is_set()


class WorkerPool:
    """N worker processes kept alive and in step with the current snapshot."""

    def __init__(self, options: NodeOptions, count: int) -> None:
        self._options = options
        self._workers = [_Worker(i) for i in range(count)]
        self._snapshot: snapshot.Snapshot | None = None
        self._lock = asyncio.Lock()
        self._stopping = False

    async def start(self, snap: snapshot.Snapshot) -> None:
        self._snapshot = snap
        for worker in self._workers:
            await worker.spawn(self._options)
        await asyncio.gather(*(w.push(snap, self._options.apply_timeout) for w in self._workers))
        spawn(self._watch(), name="worker-pool-watch")

    async def apply(self, snap: snapshot.Snapshot) -> None:
        async with self._lock:
            delta = None
            if self._snapshot is not None:
                old = self._snapshot
                frame = await asyncio.to_thread(
                    lambda: encode({"type": "delta", "delta": diff(old, snap)})
                )
                delta = (old.version, frame)
            results = await asyncio.gather(
                *(w.push(snap, self._options.apply_timeout, delta) for w in self._workers),
                return_exceptions=True,
            )
            errors = [r for r in results if isinstance(r, BaseException)]
            if errors:
                # Workers that took it keep it; put them back on the one the others still run.
                if self._snapshot is not None:
                    await asyncio.gather(
                        *(
                            w.push(self._snapshot, self._options.apply_timeout)
                            for w in self._workers
                        ),
                        return_exceptions=True,
                    )
                raise ApplyError("; ".join(str(e) for e in errors))
            self._snapshot = snap

    async def _watch(self) -> None:
        while not self._stopping:
            await asyncio.sleep(0.5)
            for worker in self._workers:
                if self._stopping or worker.alive():
                    continue
                _log.warning("worker %d exited; starting it again", worker.index)
                async with self._lock:
                    await worker.spawn(self._options)
                    if self._snapshot is not None:
                        with contextlib.suppress(Exception):
                            await worker.push(self._snapshot, self._options.apply_timeout)

    async def stop(self) -> None:
        self._stopping = True
        for worker in self._workers:
            if worker.alive():
                with contextlib.suppress(OSError, RuntimeError):
                    worker.send({"type": "shutdown"})
        deadline = self._options.drain_timeout + 5
        for worker in self._workers:
            if worker.process is None:
                continue
            try:
                await asyncio.wait_for(worker.process.wait(), deadline)
            except TimeoutError:
                worker.process.kill()
                await worker.process.wait()
            if worker.writer is not None:
                worker.writer.close()
                with contextlib.suppress(OSError, ConnectionError):
                    await worker.writer.wait_closed()

    def ports(self) -> dict[str, int]:
        return dict(self._workers[0].ports) if self._workers else {}

    def full_pushes(self) -> list[int]:
        """Per worker, how many whole snapshots it was sent (start, restarts, resyncs)."""
        return [w.full_pushes for w in self._workers]

    def versions(self) -> list[str | None]:
        """Per worker, the snapshot version it acknowledged last."""
        return [w.version for w in self._workers]

    def pids(self) -> list[int]:
        return [w.process.pid for w in self._workers if w.process is not None]
