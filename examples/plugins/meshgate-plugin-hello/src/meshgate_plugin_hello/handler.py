"""The hello plugin: greets every request upstream (``X-Hello``) and, optionally, downstream.

Shows the three things a plugin usually does: precompute from its config once per
snapshot (``__init__``), work per request in ``access`` — synchronously when it can (no task
is created), returning an awaitable only when it must wait — and finish in later phases
(``response`` adds a header, ``log`` counts greetings in node-wide state that survives
config reloads).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable

from meshgate.proxy.filters.api import CompileEnv, PluginHandler, RequestContext
from meshgate.snapshot import PluginInstance

from .schema import Config


class Handler(PluginHandler):
    name = "hello"
    PRIORITY = 850  # after auth (1000+) and rate limiting (910), before transformers (801)
    VERSION = "0.1.0"

    def __init__(self, config: Config, instance: PluginInstance, env: CompileEnv) -> None:
        super().__init__(config, instance, env)
        self.greeting = config.greeting
        self.name_header = config.name_header.lower()
        self.echo = config.echo_downstream
        self.delay = config.delay_ms / 1000
        self.key = f"hello:{instance.id}"  # this instance's per-request slot in ctx.shared
        self.counts: Counter[str] = env.node_resource("hello.greetings", Counter)

    def access(self, ctx: RequestContext) -> Awaitable[None] | None:
        if self.delay:
            return self._greet_later(ctx)
        self._greet(ctx)
        return None

    async def _greet_later(self, ctx: RequestContext) -> None:
        await asyncio.sleep(self.delay)
        self._greet(ctx)

    def _greet(self, ctx: RequestContext) -> None:
        name = ctx.header(self.name_header) or "world"
        text = f"{self.greeting}, {name}"
        ctx.set_header("X-Hello", text)
        ctx.shared[self.key] = text

    def response(self, ctx: RequestContext) -> None:
        text = ctx.shared.get(self.key)
        if self.echo and text:
            ctx.set_response_header("X-Hello", text)

    def log(self, ctx: RequestContext) -> None:
        if self.key in ctx.shared:
            self.counts[ctx.route.id if ctx.route else "-"] += 1
