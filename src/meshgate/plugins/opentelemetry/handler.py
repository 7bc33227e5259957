"""opentelemetry: trace each request (Kong's PRIORITY 14).

access: read the incoming trace context (``header_type``/``propagation.extract``), decide
sampling (the parent's decision, else ``sampling_rate``, default 1), and inject the context
for the upstream in the configured format, with the id of the ``kong.balancer`` span as
parent.  log: build the spans — ``kong`` (SERVER, the whole request, child of the incoming
span) and ``kong.balancer`` (CLIENT, the upstream call) — and queue them; a background task
exports batches as OTLP/JSON to ``traces_endpoint`` (bounded queue: drop-and-count).
``http_response_header_for_traceid`` puts the trace id on the response.
Not supported: exporting logs (``logs_endpoint``), the aws/gcp/datadog/instana formats
(treated as W3C for injection, not extracted).
"""

from __future__ import annotations

import logging
import os
import random
import socket
import time
from typing import Any

import meshgate
from meshgate.plugins._shared.facts import log_facts
from meshgate.plugins._shared.http_client import HttpSender
from meshgate.plugins._shared.queue import BatchQueue
from meshgate.proxy.filters.api import CompileEnv, PluginHandler, RequestContext
from meshgate.snapshot import PluginInstance

from . import otlp
from .propagation import ALL_FORMATS, EXTRACTORS, extract, inject
from .schema import Config

_log = logging.getLogger("meshgate.plugins.opentelemetry")
_getrandbits = random.getrandbits
_random = random.random


def _new_span_id() -> str:
    return f"{_getrandbits(64) or 1:016x}"


def _new_trace_id() -> str:
    return f"{_getrandbits(128) or 1:032x}"


class Handler(PluginHandler):
    name = "opentelemetry"
    PRIORITY = 14
    VERSION = "3.9.1"

    def __init__(self, config: Config, instance: PluginInstance, env: CompileEnv) -> None:
        super().__init__(config, instance, env)
        self.key = f"opentelemetry:{instance.id}"
        self.rate = 1.0 if config.sampling_rate is None else config.sampling_rate
        self.trace_header = config.http_response_header_for_traceid
        prop = config.propagation
        header_type = config.header_type
        if prop.extract is not None:
            self.extract_formats: tuple[str, ...] = tuple(
                f for f in prop.extract if f in EXTRACTORS
            )
        elif header_type == "ignore":
            self.extract_formats = ()
        else:
            self.extract_formats = ALL_FORMATS
        if prop.inject is not None:
            self.inject_formats: tuple[str, ...] = tuple(prop.inject)
        elif header_type in ("preserve", "ignore"):
            self.inject_formats = ("preserve",)
        else:
            self.inject_formats = (header_type,)
        self.default_format = prop.default_format
        self.clear = tuple(prop.clear or ())
        resource = {
            "service.name": "kong",
            "service.version": meshgate.__version__,
            "service.instance.id": os.environ.get("MESHGATE_NODE_ID") or socket.gethostname(),
            **(config.resource_attributes or {}),
        }
        self.resource = otlp.attributes(resource)
        self.exporting = config.traces_endpoint is not None
        self.sender: HttpSender | None = None
        if config.traces_endpoint is not None:
            self.sender = HttpSender(
                config.traces_endpoint,
                headers=dict(config.headers or {}),
                timeout=(config.connect_timeout + config.send_timeout + config.read_timeout) / 1000,
            )
        batch = config.queue.max_batch_size
        if config.batch_span_count is not None and batch == 200:
            batch = config.batch_span_count
        delay = config.queue.max_coalescing_delay
        if config.batch_flush_delay is not None and delay == 1:
            delay = float(config.batch_flush_delay)
        self.queue = BatchQueue(
            "opentelemetry", instance.id, self._send, config.queue.limits(batch, delay)
        )

    async def start(self) -> None:
        if self.exporting:
            self.queue.start()

    async def stop(self) -> None:
        await self.queue.stop()
        if self.sender is not None:
            await self.sender.close()

    # ------------------------------------------------------------------ request phases

    def access(self, ctx: RequestContext) -> None:
        incoming = extract(ctx, self.extract_formats) if self.extract_formats else None
        if incoming is not None:
            trace_id, parent = incoming.trace_id, incoming.span_id
            sampled = incoming.sampled if incoming.sampled is not None else _random() < self.rate
        else:
            trace_id, parent = _new_trace_id(), None
            sampled = _random() < self.rate
        root_id = _new_span_id()
        balancer_id = _new_span_id()
        for name in self.clear:
            ctx.clear_header(name)
        for fmt in self.inject_formats:
            if fmt == "preserve":
                fmt = incoming.format if incoming is not None else self.default_format
            inject(ctx, fmt, trace_id, balancer_id, root_id, sampled)
        ctx.shared[self.key] = (trace_id, parent, root_id, balancer_id, sampled)
        if self.trace_header:
            ctx.set_response_header(self.trace_header, trace_id)

    def log(self, ctx: RequestContext) -> None:
        state = ctx.shared.get(self.key)
        if state is None or not self.exporting:
            return
        trace_id, parent, root_id, balancer_id, sampled = state
        if not sampled:
            return
        facts = log_facts(ctx)
        end_ns = time.time_ns()
        start_ns = end_ns - int(facts.request_ms * 1e6)
        status = ctx.status
        route, service = ctx.route, ctx.service
        root = otlp.SpanRecord(
            trace_id, root_id, parent, "kong", otlp.KIND_SERVER, start_ns, end_ns,
            {
                "http.method": ctx.method,
                "http.url": f"{ctx.scheme}://{ctx.host}:{ctx.port}{ctx.path}",
                "http.host": ctx.host,
                "http.scheme": ctx.scheme,
                "http.flavor": "1.1",
                "http.status_code": status,
                "net.peer.ip": ctx.client_ip,
                "kong.route.id": route.id if route is not None else None,
                "kong.service.id": service.id if service is not None else None,
                "kong.service.name": service.name if service is not None else None,
            },
            error=status >= 500,
        )  # fmt: skip
        spans = [otlp.span_json(root)]
        if facts.proxy_ms is not None:
            up_start = start_ns + int(facts.kong_ms * 1e6)
            balancer = otlp.SpanRecord(
                trace_id, balancer_id, root_id, "kong.balancer", otlp.KIND_CLIENT,
                up_start, min(end_ns, up_start + int(facts.proxy_ms * 1e6)),
                {"http.status_code": status, "peer.service": service.name if service else None},
                error=status >= 500,
            )  # fmt: skip
            spans.append(otlp.span_json(balancer))
        self.queue.push(spans)

    async def _send(self, batch: list[Any]) -> None:
        assert self.sender is not None
        spans = [span for group in batch for span in group]
        await self.sender.send(otlp.export_request(self.resource, spans), "application/json")
