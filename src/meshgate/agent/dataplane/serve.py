"""The sidecar's serving process: ``python -m meshgate.agent.dataplane.serve LAUNCH_FILE``.

``meshgate dp`` validates its flags, prepares the state directory and execs this module
(``launch``); it runs ``DataplaneAgent`` with the proxy engine in this process until SIGTERM
or SIGINT, then drains.  It imports only what serving needs: no command-line library, no
YAML, no resource schemas, no ``cryptography``, no Admin API, no plugin packages beyond those
a snapshot names.  Once the first snapshot runs, the objects made so far (modules, the
compiled config) are moved out of the collector's reach (``gc.freeze``): they live as long as
the process, and the collections that keep coming with traffic then walk only young objects.
"""

from __future__ import annotations

import asyncio
import gc
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import uvloop

from meshgate.agent.dataplane.client import DataplaneAgent, Refused
from meshgate.agent.dataplane.launch import Launch
from meshgate.agent.logs import configure_logging
from meshgate.proxy.http.settings import ProxySettings
from meshgate.proxy.runtime import ProxyRuntime
from meshgate.tasks import spawn

if TYPE_CHECKING:
    from meshgate import snapshot


class SidecarProxy:
    """The proxy engine in this process and event loop (``supervisor.Proxy``)."""

    def __init__(self, drain_timeout: float) -> None:
        self._runtime = ProxyRuntime(ProxySettings())
        self._drain_timeout = drain_timeout

    async def start(self, snap: snapshot.Snapshot) -> None:
        await self._runtime.apply(snap)

    async def apply(self, snap: snapshot.Snapshot) -> None:
        await self._runtime.apply(snap)

    async def stop(self) -> None:
        await self._runtime.shutdown(self._drain_timeout)

    def ports(self) -> dict[str, int]:
        return self._runtime.bound_ports()


async def serve(launch: Launch) -> None:
    """Run the sidecar until SIGTERM/SIGINT (``Refused`` if refused before serving)."""
    proxy = SidecarProxy(launch.drain_timeout)
    agent = DataplaneAgent(launch.agent, proxy)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    frozen = spawn(_freeze_once_running(agent), name="sidecar-gc-freeze")
    try:
        await agent.run(stop)
    finally:
        frozen.cancel()
        if agent.running is not None:
            await proxy.stop()


async def _freeze_once_running(agent: DataplaneAgent) -> None:
    async with agent.applied:
        await agent.applied.wait_for(lambda: agent.running is not None)
    gc.collect()
    gc.freeze()


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(f"usage: python -m {__spec__.name if __spec__ else 'serve'} LAUNCH_FILE")
        return 2
    launch = Launch.from_json(Path(argv[0]).read_bytes())
    configure_logging(launch.log_level, launch.access_log)
    try:
        uvloop.run(serve(launch))
    except Refused as exc:
        print(f"the control plane refused this dataplane: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
