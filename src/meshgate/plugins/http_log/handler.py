"""http-log: in the log phase, queue the request's log record (Kong's serializer, JSON);
a background task sends batches to ``http_endpoint`` — one object when
``queue.max_batch_size`` is 1, else a JSON array (Kong's behaviour and PRIORITY 12).

The queue is bounded (``queue.max_entries``/``max_bytes``): when the endpoint is slow or
down, records beyond it are dropped and counted (log + ``meshgate_log_entries_dropped_total``)
and the gateway is unaffected.  Failed sends are retried with backoff for
``queue.max_retry_time`` seconds; ``stop`` flushes what is queued.
"""

from __future__ import annotations

import json
from typing import Any

from meshgate.plugins._shared.http_client import HttpSender
from meshgate.plugins._shared.queue import BatchQueue
from meshgate.proxy.filters.api import CompileEnv, PluginHandler, RequestContext
from meshgate.snapshot import PluginInstance

from .schema import Config


def encode(record: Any) -> bytes:
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False, default=str).encode()


class Handler(PluginHandler):
    name = "http-log"
    PRIORITY = 12
    VERSION = "3.9.1"

    def __init__(self, config: Config, instance: PluginInstance, env: CompileEnv) -> None:
        super().__init__(config, instance, env)
        self.content_type = config.content_type
        self.sender = HttpSender(
            config.http_endpoint,
            method=config.method,
            headers=dict(config.headers or {}),
            timeout=config.timeout / 1000.0,
            keepalive=config.keepalive / 1000.0,
        )
        folded = config.effective_queue()
        self.single = folded["max_batch_size"] == 1
        limits = config.queue.limits(folded["max_batch_size"], folded["delay"])
        self.queue = BatchQueue("http-log", instance.id, self._send, limits)

    async def start(self) -> None:
        self.queue.start()

    async def stop(self) -> None:
        await self.queue.stop()
        await self.sender.close()

    def log(self, ctx: RequestContext) -> None:
        entry = encode(ctx.serialize())
        self.queue.push(entry, len(entry))

    async def _send(self, batch: list[Any]) -> None:
        body = batch[0] if self.single and len(batch) == 1 else b"[" + b",".join(batch) + b"]"
        await self.sender.send(body, self.content_type)
