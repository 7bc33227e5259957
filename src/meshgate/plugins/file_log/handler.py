"""file-log: in the log phase, queue the request's log record as a JSON line; a background
task appends batches to ``path`` in a worker thread, so the event loop never waits on the
disk (Kong's PRIORITY 9).  ``reopen`` closes and reopens the file for every batch (Kong:
every record) so a rotated file is picked up.  The queue is bounded: beyond it records are
dropped and counted; ``stop`` flushes and closes the file.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from meshgate.plugins._shared.queue import BatchQueue, QueueLimits
from meshgate.proxy.filters.api import CompileEnv, PluginHandler, RequestContext
from meshgate.snapshot import PluginInstance

from .schema import Config

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_APPEND
_MODE = 0o644


class Handler(PluginHandler):
    name = "file-log"
    PRIORITY = 9
    VERSION = "3.9.1"
    queue_limits = QueueLimits(
        max_batch_size=1000, max_coalescing_delay=0.0, max_entries=10000, max_retry_time=5.0
    )

    def __init__(self, config: Config, instance: PluginInstance, env: CompileEnv) -> None:
        super().__init__(config, instance, env)
        self.path = config.path
        self.reopen = config.reopen
        self.fd: int | None = None
        self.queue = BatchQueue("file-log", instance.id, self._send, self.queue_limits)

    async def start(self) -> None:
        self.queue.start()

    async def stop(self) -> None:
        await self.queue.stop()
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def log(self, ctx: RequestContext) -> None:
        line = json.dumps(ctx.serialize(), separators=(",", ":"), ensure_ascii=False, default=str)
        data = line.encode() + b"\n"
        self.queue.push(data, len(data))

    async def _send(self, batch: list[Any]) -> None:
        await asyncio.to_thread(self._write, b"".join(batch))

    def _write(self, data: bytes) -> None:
        fd = self.fd
        if fd is not None and self.reopen:
            os.close(fd)
            self.fd = fd = None
        if fd is None:
            self.fd = fd = os.open(self.path, _FLAGS, _MODE)
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
