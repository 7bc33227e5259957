"""The log phase runs after the request is finished, from the event loop, every finished
request once and in order — batched: one loop callback for all the requests that finished
in one turn of the loop; a queue left by a loop that stopped does not hold up the next."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any, ClassVar

from meshgate.proxy.filters import flow
from meshgate.proxy.filters.api import PluginConfig, PluginHandler, RequestContext
from meshgate.proxy.filters.testing import chain_of, detached_client, make_handler
from meshgate.proxy.filters.testing_http import live_gateway, plugin
from meshgate.proxy.http.clock import monotonic
from meshgate.proxy.http.request import ProxyRequest


class _CountingLoop:
    """Stands for the engine's loop: counts ``call_soon`` and hands it to the real loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.scheduled = 0

    def call_soon(self, callback: Any, *args: Any) -> Any:
        self.scheduled += 1
        return self.loop.call_soon(callback, *args)


class _AppendName(PluginHandler):
    """Logs by appending its instance's id to ``logged``."""

    name = "test-append-name"
    PRIORITY = 5
    Config = PluginConfig
    logged: list[str]

    def log(self, ctx: RequestContext) -> None:
        self.logged.append(self.instance.id)


def _finished_request(loop: Any, logged: list[str], name: str) -> None:
    """A request through a chain with one log handler, finished as the server does (the
    engine's own classes: a compiled engine checks the types it is handed)."""
    req = ProxyRequest("127.0.0.1", monotonic())
    req.message_complete = True
    handler = make_handler(_AppendName, instance={"id": name})
    assert isinstance(handler, _AppendName)
    handler.logged = logged
    client = detached_client(loop)
    croute: Any = SimpleNamespace(route=None, service=None)
    ctx = flow.ProxyContext(client, req, croute, None, chain_of(handler))  # type: ignore[arg-type]
    req.ctx = ctx
    ctx.finished(200, 10, None)


def test_log_phases_of_one_turn_run_from_one_callback_in_order() -> None:
    logged: list[str] = []

    async def main() -> None:
        loop = _CountingLoop(asyncio.get_running_loop())
        for i in range(5):
            _finished_request(loop, logged, f"r{i}")
        assert logged == []  # not inside the callback that finished the request
        await asyncio.sleep(0)
        assert logged == [f"r{i}" for i in range(5)]
        assert loop.scheduled == 1
        _finished_request(loop, logged, "r5")  # a later turn: a new callback
        await asyncio.sleep(0)
        assert logged[-1] == "r5"
        assert loop.scheduled == 2

    asyncio.run(main())


def test_a_queue_left_by_a_stopped_loop_does_not_hold_up_the_next() -> None:
    logged: list[str] = []
    stopped = asyncio.new_event_loop()
    _finished_request(stopped, logged, "never")  # the loop never runs its callbacks
    stopped.close()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        _finished_request(loop, logged, "a")
        _finished_request(loop, logged, "b")
        await asyncio.sleep(0)

    asyncio.run(main())
    assert logged == ["a", "b"]


class _CountLogs(PluginHandler):
    name = "test-count-logs"
    PRIORITY = 5
    Config = PluginConfig
    logged: ClassVar[list[int]] = []

    def log(self, ctx: RequestContext) -> None:
        self.logged.append(ctx.status)


def test_every_proxied_request_is_logged_once() -> None:
    _CountLogs.logged.clear()
    with live_gateway(
        plugins=[plugin("test-count-logs", {}, route="r1")], handlers=[_CountLogs]
    ) as gw:
        for _ in range(30):
            assert gw.request("GET", "/r1/x").status == 200
        assert gw.request("GET", "/r2/x").status == 200  # another route: no plugin
        deadline = time.monotonic() + 5
        while len(_CountLogs.logged) < 30 and time.monotonic() < deadline:
            time.sleep(0.01)  # the log phase runs on the gateway's loop thread, just after
    assert _CountLogs.logged == [200] * 30
