"""Upstream connect coalescing (``pool_waiters``): requests without an idle connection queue
for the first free one instead of each connecting; failures and cancels leave nobody hanging.

Connects are gated where the order of events matters: ``UpstreamPools.connect`` waits for an
event before connecting, so a test decides when connects finish instead of hoping.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Callable
from typing import Any

import pytest
from engine_kit import (
    Client,
    Response,
    Seen,
    TestUpstream,
    UpstreamConn,
    echo_handler,
    get,
    make_config,
    make_route,
    make_service,
    proxy,
    run,
)

from meshgate.proxy.http.policy import LimitState, ServicePolicy
from meshgate.proxy.http.pool import UpstreamPools

PATIENT = 30.0  # no cap doubling during a test unless it asks for it


class Gate:
    """Holds every upstream connect until ``open`` (then they proceed for real)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.event: asyncio.Event | None = None
        self.started = 0
        original = UpstreamPools.connect

        async def gated(pools: UpstreamPools, *args: Any, **kwargs: Any) -> Any:
            self.started += 1
            if self.event is None:
                self.event = asyncio.Event()
            timeout = args[1]  # the connect timeout still applies to the held connect
            async with asyncio.timeout(timeout):
                await self.event.wait()
            return await original(pools, *args, **kwargs)

        monkeypatch.setattr(UpstreamPools, "connect", gated)

    def open(self) -> None:
        if self.event is None:
            self.event = asyncio.Event()
        self.event.set()

    def close(self) -> None:
        self.event = asyncio.Event()


async def until(condition: Callable[[], bool], what: str) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"never happened: {what}")


def held_handler(release: asyncio.Event) -> Callable[[UpstreamConn, Seen], Any]:
    async def handler(conn: UpstreamConn, seen: Seen) -> None:
        await release.wait()
        echo_handler(conn, seen)

    return handler


def slow_handler(delay: float) -> Callable[[UpstreamConn, Seen], Any]:
    async def handler(conn: UpstreamConn, seen: Seen) -> None:
        await asyncio.sleep(delay)
        echo_handler(conn, seen)

    return handler


async def clients(port: int, count: int) -> list[Client]:
    return [await Client.connect(port) for _ in range(count)]


async def send_all(conns: list[Client], path: str = "/") -> None:
    for client in conns:  # every request is written before the proxy reads any
        client.writer.write(get(path))
    for client in conns:
        await client.writer.drain()


async def answers(conns: list[Client]) -> list[Response]:
    return list(await asyncio.gather(*(client.response() for client in conns)))


def reset(client: Client) -> None:
    """Close with a reset (a FIN only half-closes: the proxy would finish the request)."""
    sock = client.writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_burst_opens_cap_connections_not_one_per_request(monkeypatch: pytest.MonkeyPatch) -> None:
    gate = Gate(monkeypatch)
    burst = 40

    async def main() -> None:
        up = await TestUpstream(handler=slow_handler(0.002)).start()
        config = make_config([("/", make_route(make_service([up.port])))])
        async with proxy(config, upstream_connecting_max=4, upstream_connect_patience=PATIENT) as p:
            queues = p.engine.pools.queues
            conns = await clients(p.port, burst)
            await send_all(conns)
            await until(lambda: queues.waiting == burst, "the whole burst queued")
            assert gate.started == 4  # the cap: four connects for forty requests
            gate.open()
            responses = await answers(conns)
            assert [r.status for r in responses] == [200] * burst
            assert len(up.requests) == burst
            assert up.connections == 4
            assert p.engine.pools.opened == 4
            assert queues.waiting == 0
            assert queues.queues == {}
            assert queues.handed_over == burst - 4  # all the others got released ones
            assert p.engine.pools.idle_count() == 4

    run(main())


def test_ungated_burst_opens_far_fewer_connections_than_requests() -> None:
    burst = 60

    async def main() -> None:
        up = await TestUpstream(handler=slow_handler(0.002)).start()
        config = make_config([("/", make_route(make_service([up.port])))])
        async with proxy(config) as p:  # the default cap and patience
            conns = await clients(p.port, burst)
            await send_all(conns)
            responses = await answers(conns)
            assert [r.status for r in responses] == [200] * burst
            assert up.connections <= burst // 4, up.connections
            assert p.engine.pools.queues.waiting == 0

    run(main())


def test_limited_cluster_burst_is_coalesced_too(monkeypatch: pytest.MonkeyPatch) -> None:
    gate = Gate(monkeypatch)
    burst = 20

    async def main() -> None:
        up = await TestUpstream().start()
        svc = make_service([up.port])
        limits = LimitState(100, 100, 100, 3)
        svc.policy = ServicePolicy(None, None, None, limits)
        config = make_config([("/", make_route(svc))])
        async with proxy(config, upstream_connecting_max=2, upstream_connect_patience=PATIENT) as p:
            conns = await clients(p.port, burst)
            await send_all(conns)
            await until(lambda: p.engine.pools.queues.waiting == burst, "the burst queued")
            assert gate.started == 2
            assert limits.connections == 2  # only the connects made reserve a slot
            gate.open()
            responses = await answers(conns)
            assert [r.status for r in responses] == [200] * burst
            assert up.connections == 2
            assert limits.connections == 2
            assert limits.requests == 0

    run(main())


def test_failed_connects_fail_every_waiter_with_the_usual_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gate = Gate(monkeypatch)
    burst = 12

    async def main() -> None:
        dead = _closed_port()
        config = make_config([("/", make_route(make_service([dead])))])
        async with proxy(config, upstream_connecting_max=3, upstream_connect_patience=PATIENT) as p:
            conns = await clients(p.port, burst)
            await send_all(conns)
            await until(lambda: p.engine.pools.queues.waiting == burst, "the burst queued")
            gate.open()
            responses = await answers(conns)
            assert [r.status for r in responses] == [502] * burst
            assert {r.header("meshgate-error") for r in responses} == {"upstream-connect-refused"}
            assert p.engine.pools.queues.waiting == 0
            assert p.engine.pools.queues.queues == {}

    run(main())


def test_failed_connect_retries_waiters_on_another_target(monkeypatch: pytest.MonkeyPatch) -> None:
    gate = Gate(monkeypatch)
    burst = 10

    async def main() -> None:
        up = await TestUpstream().start()
        svc = make_service([_closed_port(), up.port], retries=1)
        config = make_config([("/", make_route(svc))])
        async with proxy(config, upstream_connecting_max=2, upstream_connect_patience=PATIENT) as p:
            conns = await clients(p.port, burst)
            await send_all(conns)
            await until(lambda: p.engine.pools.queues.waiting == burst, "the burst queued")
            gate.open()
            responses = await answers(conns)
            assert [r.status for r in responses] == [200] * burst
            assert {r.json()["name"] for r in responses} == {"up"}

    run(main())


def test_connect_timeout_fails_queued_waiters_without_hanging(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    Gate(monkeypatch)  # never opened: every connect times out
    burst = 8

    async def main() -> None:
        up = await TestUpstream().start()
        svc = make_service([up.port], connect_timeout=0.2)
        config = make_config([("/", make_route(svc))])
        async with proxy(config, upstream_connecting_max=2, upstream_connect_patience=0.05) as p:
            conns = await clients(p.port, burst)
            loop = asyncio.get_running_loop()
            started = loop.time()
            await send_all(conns)
            responses = await answers(conns)
            assert [r.status for r in responses] == [504] * burst
            assert {r.header("meshgate-error") for r in responses} == {"upstream-connect-timeout"}
            # one connect timeout (plus a patience tick), not one per queued request
            assert loop.time() - started < 1.0
            assert up.connections == 0
            assert p.engine.pools.queues.waiting == 0

    run(main())


def test_cancelled_waiter_leaves_the_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    gate = Gate(monkeypatch)

    async def main() -> None:
        up = await TestUpstream().start()
        config = make_config([("/", make_route(make_service([up.port])))])
        async with proxy(config, upstream_connecting_max=1, upstream_connect_patience=PATIENT) as p:
            queues = p.engine.pools.queues
            first, second, third = await clients(p.port, 3)
            await send_all([first, second, third])
            await until(lambda: queues.waiting == 3, "three waiters")
            assert gate.started == 1
            reset(second)  # its client is gone: it must not wait (nor be served) any more
            await until(lambda: queues.waiting == 2, "the cancelled waiter left")
            gate.open()
            assert (await first.response()).status == 200
            assert (await third.response()).status == 200
            assert len(up.requests) == 2
            assert up.connections == 1
            assert queues.waiting == 0

    run(main())


def test_timed_out_waiter_leaves_the_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    gate = Gate(monkeypatch)

    async def main() -> None:
        up = await TestUpstream().start()
        svc = make_service([up.port])
        svc.policy = ServicePolicy(None, 0.2, None, None)  # a whole-request timeout
        config = make_config([("/", make_route(svc))])
        async with proxy(config, upstream_connecting_max=1, upstream_connect_patience=PATIENT) as p:
            queues = p.engine.pools.queues
            first, second = await clients(p.port, 2)
            await send_all([first, second])
            await until(lambda: queues.waiting == 2, "two waiters")
            responses = await answers([first, second])
            assert [r.status for r in responses] == [504, 504]
            assert {r.header("meshgate-error") for r in responses} == {"upstream-request-timeout"}
            assert queues.waiting == 0
            gate.open()  # the connect nobody waits for any more finishes and idles
            await until(lambda: p.engine.pools.idle_count() == 1, "the connection idles")
            assert queues.queues == {}
            assert up.requests == []

    run(main())


def test_released_connection_goes_straight_to_the_head_waiter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gate = Gate(monkeypatch)
    gate.open()

    async def main() -> None:
        release = asyncio.Event()
        up = await TestUpstream(handler=held_handler(release)).start()
        config = make_config([("/", make_route(make_service([up.port])))])
        async with proxy(config, upstream_connecting_max=1, upstream_connect_patience=PATIENT) as p:
            pools = p.engine.pools
            first = (await clients(p.port, 1))[0]
            await send_all([first])
            await up.wait_requests(1)  # the first request owns the only connection
            gate.close()  # from now on connects hang
            second, third = await clients(p.port, 2)
            await send_all([second, third])
            await until(lambda: pools.queues.waiting == 2, "two waiters")
            assert gate.started == 2  # the second started a connect; the third only waits
            release.set()
            responses = [await c.response() for c in (first, second, third)]
            assert [r.status for r in responses] == [200, 200, 200]
            assert up.connections == 1  # the pending connect never mattered
            assert pools.queues.handed_over == 2
            assert pools.idle_count() == 1
            gate.open()  # the held connect completes; nobody waits: it idles
            await until(lambda: pools.idle_count() == 2, "the late connection idles")
            assert pools.queues.queues == {}

    run(main())


def test_unreusable_connection_is_not_handed_over(monkeypatch: pytest.MonkeyPatch) -> None:
    gate = Gate(monkeypatch)
    gate.open()

    def closing_handler(conn: UpstreamConn, seen: Seen) -> None:
        conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        assert conn.transport is not None
        conn.transport.close()

    async def main() -> None:
        up = await TestUpstream(handler=closing_handler).start()
        config = make_config([("/", make_route(make_service([up.port])))])
        async with proxy(config, upstream_connecting_max=1, upstream_connect_patience=PATIENT) as p:
            pools = p.engine.pools
            gate.close()
            conns = await clients(p.port, 3)
            await send_all(conns)
            await until(lambda: pools.queues.waiting == 3, "three waiters")
            assert gate.started == 1
            gate.open()
            responses = await answers(conns)
            assert [r.status for r in responses] == [200] * 3
            assert pools.queues.handed_over == 0  # each closed connection was replaced
            assert up.connections == 3

    run(main())


def test_stuck_queue_gets_more_connects_after_patience() -> None:
    """Long requests release nothing: after each patience the cap doubles until everyone
    has a connection (a queue that released connections keep serving does not grow it)."""

    async def main() -> None:
        release = asyncio.Event()
        up = await TestUpstream(handler=held_handler(release)).start()
        config = make_config([("/", make_route(make_service([up.port])))])
        async with proxy(config, upstream_connecting_max=1, upstream_connect_patience=0.05) as p:
            conns = await clients(p.port, 4)
            await send_all(conns)
            await up.wait_requests(4)  # all four reached the upstream, each on its own
            assert up.connections == 4
            release.set()
            responses = await answers(conns)
            assert [r.status for r in responses] == [200] * 4
            assert p.engine.pools.queues.queues == {}

    run(main())
