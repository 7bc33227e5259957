"""correlation-id: in access, keep the request's id header or set a generated one, record it
for the log (``correlation_id``), and with ``echo_downstream`` put it on the response
(Kong's behaviour and PRIORITY 100001).

Generators: ``uuid`` (a random UUID), ``uuid#counter`` (a per-process UUID and a counter),
``tracker`` (server address-port-pid-counter-1-time: Kong's nginx connection numbers do not
exist here, a process-wide counter stands in).
"""

from __future__ import annotations

import itertools
import os
import time
import uuid

from meshgate.proxy.filters.api import CompileEnv, PluginHandler, RequestContext
from meshgate.snapshot import PluginInstance

from .schema import Config

_WORKER_UUID = str(uuid.uuid4())
_counter = itertools.count(1)


def _uuid(ctx: RequestContext) -> str:
    return str(uuid.uuid4())


def _uuid_counter(ctx: RequestContext) -> str:
    return f"{_WORKER_UUID}#{next(_counter)}"


def _tracker(ctx: RequestContext) -> str:
    return f"{ctx.host}-{ctx.port}-{os.getpid()}-{next(_counter)}-1-{time.time():.3f}"


_GENERATORS = {"uuid": _uuid, "uuid#counter": _uuid_counter, "tracker": _tracker}


class Handler(PluginHandler):
    name = "correlation-id"
    PRIORITY = 100001
    VERSION = "3.9.1"

    def __init__(self, config: Config, instance: PluginInstance, env: CompileEnv) -> None:
        super().__init__(config, instance, env)
        self.header_name = config.header_name
        self.lname = config.header_name.lower()
        self.generate = _GENERATORS[config.generator]
        self.echo = config.echo_downstream
        self.key = f"correlation-id:{instance.id}"

    def access(self, ctx: RequestContext) -> None:
        value = ctx.header(self.lname)
        if not value:
            value = self.generate(ctx)
            ctx.set_header(self.header_name, value)
        ctx.set_serialize_value("correlation_id", value)
        if self.echo:
            ctx.shared[self.key] = value

    def response(self, ctx: RequestContext) -> None:
        if self.echo:
            value = ctx.shared.get(self.key)
            if value:
                ctx.set_response_header(self.header_name, value)
