"""Event-log bridge test helpers: a contract ``Backend`` that reaches the log through the bridge.

``BridgeBackend.open`` opens an embedded log, serves it on a unix socket in the same event loop
and yields a ``RemoteEventLog`` connected to it, so the EventLog contract tests run unchanged
with every call crossing the socket. ``short_socket_dir`` keeps unix socket paths under the
108-byte limit (pytest's ``tmp_path`` can be longer).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meshgate.events.api import EventLog, ProduceRecord
from meshgate.events.bridge import EventLogServer, RemoteEventLog
from meshgate.events.embedded import EmbeddedEventLog


@contextmanager
def short_socket_dir() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="mgb-"))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@dataclass
class BridgeBackend:
    """Opens embedded log + server + remote client; ``open`` may be called again (restart)."""

    directory: Path
    socket_path: Path
    kind: str = "bridge"

    @asynccontextmanager
    async def open(self, **options: Any) -> AsyncIterator[EventLog]:
        log = await EmbeddedEventLog.open(self.directory, **options)
        server = EventLogServer(log, str(self.socket_path))
        await server.start()
        client = RemoteEventLog(self.socket_path)
        try:
            yield client
        finally:
            await client.close()
            await server.close()
            await log.close()


def produce_from_process(socket_path: str, topic: str, writer: int, batches: int) -> None:
    """Child process body: ``batches`` produces of 5 records tagged ``writer``, one by one."""

    async def produce_all() -> None:
        client = RemoteEventLog(socket_path)
        try:
            for batch in range(batches):
                records = [ProduceRecord(value=f"{writer}:{batch}:{i}".encode()) for i in range(5)]
                await client.produce(topic, records, partition=0)
        finally:
            await client.close()

    asyncio.run(produce_all())
