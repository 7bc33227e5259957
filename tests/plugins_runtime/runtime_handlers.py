"""Test plugins for the runtime tests: each does one visible thing."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from meshgate import tasks
from meshgate.proxy.filters.api import (
    CompileEnv,
    Exit,
    PluginConfig,
    PluginHandler,
    RequestContext,
)
from meshgate.snapshot import PluginInstance

LOGGED: list[dict[str, Any]] = []  # serialize() of every request the "logger" plugin saw


class TagConfig(PluginConfig):
    value: str = "default"


class Tag(PluginHandler):
    """Sets upstream header X-Tag to its config value."""

    name = "tag"
    PRIORITY = 500
    Config = TagConfig

    def __init__(self, config: TagConfig, instance: PluginInstance, env: CompileEnv) -> None:
        super().__init__(config, instance, env)
        self.value = config.value

    def access(self, ctx: RequestContext) -> None:
        ctx.set_header("X-Tag", self.value)
        ctx.set_response_header("X-Tag-Seen", self.value)


class EmptyConfig(PluginConfig):
    pass


class WhoAuth(PluginHandler):
    """Authenticates the consumer whose username is in X-User (no header: anonymous)."""

    name = "who-auth"
    PRIORITY = 1250
    Config = EmptyConfig

    def __init__(self, config: EmptyConfig, instance: PluginInstance, env: CompileEnv) -> None:
        super().__init__(config, instance, env)
        self.by_name = {c.username: c for c in env.consumers_by_id().values()}

    def access(self, ctx: RequestContext) -> None:
        user = ctx.header("x-user")
        if user is None:
            return
        consumer = self.by_name.get(user)
        if consumer is None:
            ctx.exit(401, "Unauthorized")
        ctx.authenticate(consumer, {"id": f"cred-{user}"})


class BoomConfig(PluginConfig):
    phase: str = "access"


class Boom(PluginHandler):
    """Raises in the configured phase."""

    name = "boom"
    PRIORITY = 100
    Config = BoomConfig

    def __init__(self, config: BoomConfig, instance: PluginInstance, env: CompileEnv) -> None:
        super().__init__(config, instance, env)
        self.phase = config.phase

    def access(self, ctx: RequestContext) -> None:
        if self.phase == "access":
            raise RuntimeError("boom in access")

    def response(self, ctx: RequestContext) -> None:
        if self.phase == "response":
            raise RuntimeError("boom in response")

    def body(self, ctx: RequestContext, chunk: bytes, eof: bool) -> bytes:
        if self.phase == "body":
            raise RuntimeError("boom in body")
        return chunk

    def log(self, ctx: RequestContext) -> None:
        if self.phase == "log":
            raise RuntimeError("boom in log")


class SlowConfig(PluginConfig):
    delay: float = 0.01
    deny: bool = False


class Slow(PluginHandler):
    """Awaits, then sets X-Slow (or exits 403 when ``deny``)."""

    name = "slow"
    PRIORITY = 800
    Config = SlowConfig

    def __init__(self, config: SlowConfig, instance: PluginInstance, env: CompileEnv) -> None:
        super().__init__(config, instance, env)
        self.conf = config

    def access(self, ctx: RequestContext) -> Any:
        return self._wait(ctx)

    async def _wait(self, ctx: RequestContext) -> None:
        await asyncio.sleep(self.conf.delay)
        if self.conf.deny:
            ctx.exit(403, "slowly denied")
        ctx.set_header("X-Slow", "done")


class Upper(PluginHandler):
    """Upper-cases the response body and appends b"!" at the end (changes its length)."""

    name = "upper"
    PRIORITY = 50
    Config = EmptyConfig

    def body(self, ctx: RequestContext, chunk: bytes, eof: bool) -> bytes:
        return chunk.upper() + (b"!" if eof else b"")


class RewriteConfig(PluginConfig):
    path: str | None = None
    query: str | None = None
    method: str | None = None
    body_prefix: str | None = None


class Rewrite(PluginHandler):
    """Changes path/query/method; with ``body_prefix`` reads and replaces the body."""

    name = "rewrite"
    PRIORITY = 700
    Config = RewriteConfig

    def __init__(self, config: RewriteConfig, instance: PluginInstance, env: CompileEnv) -> None:
        super().__init__(config, instance, env)
        self.conf = config
        self.needs_body = config.body_prefix is not None
        self.body_limit = 1000

    def access(self, ctx: RequestContext) -> None:
        conf = self.conf
        if conf.path is not None:
            ctx.set_path(conf.path)
        if conf.query is not None:
            ctx.set_raw_query(conf.query)
        if conf.method is not None:
            ctx.set_method(conf.method)
        if conf.body_prefix is not None:
            ctx.set_body(conf.body_prefix.encode() + ctx.raw_body())


class Logger(PluginHandler):
    """Keeps ``serialize()`` of every request in ``LOGGED``."""

    name = "logger"
    PRIORITY = 5
    Config = EmptyConfig

    def log(self, ctx: RequestContext) -> None:
        LOGGED.append(ctx.serialize())


class Order(PluginHandler):
    """Appends its name to upstream header X-Order (three copies at different priorities)."""

    name = "order-a"
    PRIORITY = 30
    Config = EmptyConfig
    instances: ClassVar[int] = 0

    def access(self, ctx: RequestContext) -> None:
        ctx.add_header("X-Order", self.name)


class OrderB(Order):
    name = "order-b"
    PRIORITY = 20


class OrderC(Order):
    name = "order-c"
    PRIORITY = 10


class FutureWaitConfig(PluginConfig):
    outcome: str = "result"  # result | exit | error | never


FUTURE_WAITS: list[asyncio.Future[None]] = []  # every future "future-wait" returned
TASKS_AT_SETTLE: list[list[str]] = []  # names of the spawned tasks running as one settled


class FutureWait(PluginHandler):
    """Returns a bare loop future (no coroutine) that settles 10 ms later with a result, an
    ``Exit`` (418), a ``RuntimeError``, or never."""

    name = "future-wait"
    PRIORITY = 800
    Config = FutureWaitConfig

    @property
    def outcome(self) -> str:
        config = self.config
        assert isinstance(config, FutureWaitConfig)
        return config.outcome

    def access(self, ctx: RequestContext) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        FUTURE_WAITS.append(future)
        if self.outcome != "never":
            loop.call_later(0.01, self._settle, future)
        return future

    def _settle(self, future: asyncio.Future[None]) -> None:
        TASKS_AT_SETTLE.append([task.get_name() for task in tasks.running()])
        if self.outcome == "result":
            future.set_result(None)
        elif self.outcome == "exit":
            future.set_exception(Exit(418, b'{"message":"from a future"}'))
        else:
            future.set_exception(RuntimeError("future boom"))


ALL = [Tag, WhoAuth, Boom, Slow, Upper, Rewrite, Logger, Order, OrderB, OrderC, FutureWait]


STREAM_EVENTS: list[str] = []


class Streamer(PluginHandler):
    """Streams three chunks; the third only after the client's back-pressure allows."""

    name = "streamer"
    PRIORITY = 400
    Config = EmptyConfig

    def access(self, ctx: RequestContext) -> Any:
        return self._stream(ctx)

    async def _stream(self, ctx: RequestContext) -> None:
        out = ctx.stream(200, {"Content-Type": "text/event-stream"})
        try:
            for i in range(3):
                await out.write(f"data: {i}\n\n".encode())
                await asyncio.sleep(0.005)
            if ctx.header("x-hold") is not None:  # keep streaming until the client leaves
                while True:
                    await out.write(b": ping\n\n")
                    await asyncio.sleep(0.01)
        except ConnectionError:
            STREAM_EVENTS.append("client-gone")
            return
        await out.close()
        STREAM_EVENTS.append("closed")


class Echoer(PluginHandler):
    """Takes WebSocket upgrades over and echoes raw bytes back upper-cased until b"bye"."""

    name = "echoer"
    PRIORITY = 400
    Config = EmptyConfig

    def access(self, ctx: RequestContext) -> Any:
        return self._pipe(ctx)

    async def _pipe(self, ctx: RequestContext) -> None:
        conn = ctx.upgrade({"Upgrade": "websocket", "Connection": "Upgrade"})
        while True:
            data = await conn.read()
            if not data:
                return
            await conn.write(data.upper())
            if b"bye" in data:
                await conn.close()
                return


ALL.extend([Streamer, Echoer])
