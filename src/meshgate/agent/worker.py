"""A proxy worker process: takes settings and snapshots from its supervisor over a socket.

Started as ``python -m meshgate.agent.worker --control-fd N`` by ``agent.supervisor``.  Every
snapshot is acknowledged (``ack`` with its version) or refused (``nack`` with the reason); a
refused snapshot leaves the running one in place.  After the first snapshot the supervisor
usually sends a ``delta`` (``agent.snapshot_diff``) from the version running here; a delta
for another version is refused and the supervisor sends the whole snapshot.  When the supervisor goes away or says
``shutdown`` the worker drains its connections and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
from typing import Any

import uvloop

from meshgate import snapshot
from meshgate.agent.frames import FrameDecoder, encode
from meshgate.agent.heap import HeapFreezer
from meshgate.agent.logs import configure_logging
from meshgate.agent.snapshot_diff import patch
from meshgate.proxy.filters.registry import configure_plugins
from meshgate.proxy.http.settings import ProxySettings
from meshgate.proxy.runtime import ProxyRuntime

_log = logging.getLogger("meshgate.worker")


class WorkerSession:
    """The worker's side of the control socket."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._runtime: ProxyRuntime | None = None
        self._stop = asyncio.Event()
        self._drain_timeout = 10.0
        self._heap = HeapFreezer()

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        reading = asyncio.ensure_future(self._read_loop())
        stopping = asyncio.ensure_future(self._stop.wait())
        await asyncio.wait({reading, stopping}, return_when=asyncio.FIRST_COMPLETED)
        reading.cancel()
        stopping.cancel()
        if self._runtime is not None:
            await self._runtime.shutdown(self._drain_timeout)

    async def _read_loop(self) -> None:
        decoder = FrameDecoder()
        while True:
            data = await self._reader.read(1 << 20)
            if not data:
                return
            for message in decoder.feed(data):
                if not await self._handle(message):
                    return

    async def _handle(self, message: dict[str, Any]) -> bool:
        kind = message.get("type")
        if kind == "settings":
            configure_logging(message.get("log_level", "info"), message.get("access_log", True))
            self._drain_timeout = float(message.get("drain_timeout", 10.0))
            configure_plugins(str(message.get("plugins", "bundled")))
            raw = message["settings"]
            raw["trust_forwarded_from"] = tuple(raw.get("trust_forwarded_from", ()))
            self._runtime = ProxyRuntime(
                ProxySettings(**raw),
                tls_verify_default=bool(message.get("tls_verify_default", False)),
            )
        elif kind == "snapshot":
            await self._apply(message["snapshot"])
        elif kind == "delta":
            await self._apply_delta(message["delta"])
        elif kind == "shutdown":
            return False
        return True

    async def _apply(self, raw: str) -> None:
        if self._runtime is None:
            self._send({"type": "nack", "error": "snapshot before settings"})
            return
        try:
            snap = snapshot.Snapshot.from_json(raw)
            await self._runtime.apply(snap)
        except Exception as exc:
            _log.exception("snapshot refused")
            self._send({"type": "nack", "error": f"{type(exc).__name__}: {exc}"})
            return
        self._acknowledge(snap)

    async def _apply_delta(self, delta: dict[str, Any]) -> None:
        running = self._runtime.state.config.snapshot if self._runtime is not None else None
        if self._runtime is None or running is None or not running.version:
            self._send({"type": "nack", "error": "delta before a snapshot"})
            return
        try:
            snap = patch(running, delta)
            await self._runtime.apply(snap)
        except Exception as exc:
            _log.exception("snapshot delta refused")
            self._send({"type": "nack", "error": f"{type(exc).__name__}: {exc}"})
            return
        self._acknowledge(snap)

    def _acknowledge(self, snap: snapshot.Snapshot) -> None:
        assert self._runtime is not None
        self._send({"type": "ack", "version": snap.version, "ports": self._runtime.bound_ports()})
        self._heap.after_apply(len(snap.routes) + len(snap.services) + len(snap.consumers))

    def _send(self, message: dict[str, Any]) -> None:
        self._writer.write(encode(message))


async def _main(fd: int) -> None:
    sock = socket.socket(fileno=fd)
    reader, writer = await asyncio.open_connection(sock=sock)
    session = WorkerSession(reader, writer)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, session.request_stop)
    # Ctrl-C reaches the whole process group; the supervisor decides, workers wait to be told.
    loop.add_signal_handler(signal.SIGINT, lambda: None)
    await session.run()
    writer.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="meshgate-worker")
    parser.add_argument("--control-fd", type=int, required=True)
    args = parser.parse_args(argv)
    uvloop.run(_main(args.control_fd))


if __name__ == "__main__":
    main()
