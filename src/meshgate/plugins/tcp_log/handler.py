"""tcp-log: in the log phase, queue the request's log record as a JSON line; a background
task writes batches to ``host:port`` over one kept-alive connection, TLS when ``tls`` (not
verified, SNI ``tls_sni``, as Kong) — Kong's PRIORITY 7.  The queue is bounded: when the
server is down or slow, records beyond it are dropped and counted, the gateway unaffected;
``stop`` flushes and closes the connection.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from typing import Any

from meshgate.plugins._shared.queue import BatchQueue, QueueLimits
from meshgate.proxy.filters.api import CompileEnv, PluginHandler, RequestContext
from meshgate.snapshot import PluginInstance

from .schema import Config


class TcpSender:
    """Writes to one server over a reused connection."""

    def __init__(self, host: str, port: int, *, timeout: float, keepalive: float,
                 tls: bool, sni: str | None) -> None:  # fmt: skip
        self.host = host.strip("[]")
        self.port = port
        self.timeout = timeout
        self.keepalive = keepalive
        self.context: ssl.SSLContext | None = None
        self.sni = sni or host
        if tls:
            self.context = ssl.create_default_context()
            self.context.check_hostname = False
            self.context.verify_mode = ssl.CERT_NONE
        self.writer: asyncio.StreamWriter | None = None
        self.reader: asyncio.StreamReader | None = None
        self.idle_since = 0.0

    async def send(self, data: bytes) -> None:
        try:
            await asyncio.wait_for(self._send(data), self.timeout)
        except BaseException:
            self.drop()
            raise

    async def _send(self, data: bytes) -> None:
        writer = self.writer
        stale = time.monotonic() - self.idle_since > self.keepalive
        if writer is None or writer.is_closing() or stale or (self.reader and self.reader.at_eof()):
            self.drop()
            self.reader, writer = await asyncio.open_connection(
                self.host, self.port, ssl=self.context,
                server_hostname=self.sni if self.context else None,
            )  # fmt: skip
            self.writer = writer
        writer.write(data)
        await writer.drain()
        self.idle_since = time.monotonic()

    def drop(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.writer = self.reader = None

    async def close(self) -> None:
        writer = self.writer
        self.drop()
        if writer is not None:
            try:
                await asyncio.wait_for(writer.wait_closed(), 1.0)
            except (OSError, TimeoutError):
                pass


class Handler(PluginHandler):
    name = "tcp-log"
    PRIORITY = 7
    VERSION = "3.9.1"
    queue_limits = QueueLimits(
        max_batch_size=200, max_coalescing_delay=0.0, max_entries=10000, max_retry_time=5.0
    )

    def __init__(self, config: Config, instance: PluginInstance, env: CompileEnv) -> None:
        super().__init__(config, instance, env)
        self.sender = TcpSender(
            config.host, config.port, timeout=config.timeout / 1000.0,
            keepalive=config.keepalive / 1000.0, tls=config.tls, sni=config.tls_sni,
        )  # fmt: skip
        self.queue = BatchQueue("tcp-log", instance.id, self._send, self.queue_limits)

    async def start(self) -> None:
        self.queue.start()

    async def stop(self) -> None:
        await self.queue.stop()
        await self.sender.close()

    def log(self, ctx: RequestContext) -> None:
        line = json.dumps(ctx.serialize(), separators=(",", ":"), ensure_ascii=False, default=str)
        data = line.encode() + b"\n"
        self.queue.push(data, len(data))

    async def _send(self, batch: list[Any]) -> None:
        await self.sender.send(b"".join(batch))
