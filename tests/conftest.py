"""Fixtures shared by every test area (helpers live in ``testkit``)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from meshgate.demo.upstreams import start_echo_upstream
from testkit import BackgroundLoop, EchoUpstreams


def _engine_compiled() -> bool:
    """Whether the engine runs from its mypyc-compiled modules (``make native``, see
    ``meshgate._native``) rather than from its Python source."""
    import meshgate.proxy.http.server as server

    return not (server.__file__ or "").endswith(".py")


ENGINE_COMPILED = _engine_compiled()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if not ENGINE_COMPILED:
        return
    for item in items:
        marker = item.get_closest_marker("pure_python")
        if marker is not None:
            if not marker.args:
                raise pytest.UsageError(f"{item.nodeid}: pure_python needs a reason")
            reason = marker.args[0]
            item.add_marker(pytest.mark.skip(reason=f"compiled engine: {reason}"))


@pytest.fixture
def background_loop() -> Iterator[BackgroundLoop]:
    bg = BackgroundLoop()
    yield bg
    bg.close()


@pytest.fixture
def echo_upstreams(background_loop: BackgroundLoop) -> Iterator[EchoUpstreams]:
    """Two echo upstreams on free ports, named ``echo-1`` and ``echo-2``."""
    ups = EchoUpstreams()
    servers: list[asyncio.Server] = []
    for i in range(2):
        server, counters = background_loop.run(start_echo_upstream(f"echo-{i + 1}"))
        servers.append(server)
        ups.ports.append(server.sockets[0].getsockname()[1])
        ups.counters.append(counters)
    yield ups

    async def close_all() -> None:
        for server in servers:
            server.close()

    background_loop.run(close_all())
