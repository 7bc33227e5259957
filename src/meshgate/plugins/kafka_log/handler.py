"""kafka-log: in the log phase, queue ``ctx.serialize()``; a flush task writes each batch to
``topic`` — one record per entry when ``queue.max_batch_size`` is 1, else one record holding
a JSON array (Kong's behaviour; PRIORITY 5).

Memory is bounded by the queue (``queue.max_entries``/``max_bytes`` and
``producer_async_buffering_limits_messages_in_memory``, whichever is smaller): when the log is
down or slow, new entries are dropped and counted (``dropped``), never buffered without bound;
a failing batch is retried with backoff until ``queue.max_retry_time``. ``stop`` flushes.
"""

from __future__ import annotations

import json
from typing import Any

from meshgate.events.api import ProduceRecord
from meshgate.events.http_api.logs import event_log_for
from meshgate.events.http_api.produce import KONG_ACKS, produce_checked
from meshgate.plugins._shared.queue import BatchQueue, QueueLimits
from meshgate.proxy.filters.api import CompileEnv, PluginHandler, RequestContext
from meshgate.snapshot import PluginInstance

from .schema import Config


def _dotted(entry: dict[str, Any], path: str) -> Any:
    node: Any = entry
    for part in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


class Handler(PluginHandler):
    name = "kafka-log"
    PRIORITY = 5
    VERSION = "0.1.0"

    def __init__(self, config: Config, instance: PluginInstance, env: CompileEnv) -> None:
        super().__init__(config, instance, env)
        self.conf = config
        self.event_log = event_log_for(config, env)
        self.acks = KONG_ACKS[config.producer_request_acks]
        base = config.queue.limits()
        limits = QueueLimits(
            max_batch_size=base.max_batch_size,
            max_coalescing_delay=base.max_coalescing_delay,
            max_entries=min(base.max_entries,
                            config.producer_async_buffering_limits_messages_in_memory),
            max_bytes=base.max_bytes,
            max_retry_time=base.max_retry_time,
            initial_retry_delay=base.initial_retry_delay,
            max_retry_delay=base.max_retry_delay,
        )  # fmt: skip
        self.queue = BatchQueue("kafka-log", instance.id, self._send, limits)

    async def start(self) -> None:
        self.queue.start()

    async def stop(self) -> None:
        await self.queue.stop()

    def log(self, ctx: RequestContext) -> None:
        entry = ctx.serialize()
        data = json.dumps(entry, separators=(",", ":"), default=str).encode()
        key = None
        if self.conf.key_field:
            found = _dotted(entry, self.conf.key_field)
            key = str(found).encode() if found is not None else None
        self.queue.push((key, data), len(data))

    async def _send(self, batch: list[Any]) -> None:
        if self.conf.queue.max_batch_size == 1:
            records = [ProduceRecord(key=key, value=data) for key, data in batch]
        else:
            joined = b"[" + b",".join(data for _, data in batch) + b"]"
            records = [ProduceRecord(key=batch[0][0], value=joined)]
        await produce_checked(self.event_log, self.conf, self.conf.topic, records,
                              acks=self.acks,
                              timeout=self.conf.producer_request_timeout / 1000)  # fmt: skip
