"""Active health checks against tiny real servers on 127.0.0.1 (HTTP, TCP, HTTPS, timeouts)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import trustme
from balancer_support import FakeRequest, cluster

from meshgate import snapshot, tasks
from meshgate.proxy.balancer import Balancer, Target
from meshgate.proxy.balancer.health_active import parse_status_line


class TinyServer:
    """An HTTP server answering every request with ``status`` (or never, when ``silent``)."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.status = 200
        self.silent = False
        self.requests: list[bytes] = []
        self.port = 0
        self._tls = tls
        self._server: asyncio.Server | None = None
        self._release = asyncio.Event()

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, "127.0.0.1", self.port, ssl=self._tls
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._release.set()
        self._server.close()
        await self._server.wait_closed()
        self._release = asyncio.Event()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            self.requests.append(await reader.readuntil(b"\r\n\r\n"))
            if self.silent:
                await self._release.wait()
                return
            writer.write(f"HTTP/1.1 {self.status} X\r\nContent-Length: 0\r\n\r\n".encode())
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


def active(**fields: Any) -> snapshot.Healthchecks:
    healthy = snapshot.ActiveHealthy(
        interval=fields.pop("healthy_interval", 0), successes=fields.pop("successes", 2)
    )
    unhealthy = snapshot.ActiveUnhealthy(
        interval=fields.pop("unhealthy_interval", 0),
        http_failures=fields.pop("http_failures", 2),
        tcp_failures=fields.pop("tcp_failures", 1),
        timeouts=fields.pop("timeouts", 1),
    )
    return snapshot.Healthchecks(
        active=snapshot.ActiveHealthcheck(healthy=healthy, unhealthy=unhealthy, **fields)
    )


def run(coro: Callable[[], Awaitable[None]]) -> None:
    async def main() -> None:
        await asyncio.wait_for(coro(), 20)

    asyncio.run(main())


async def eventually(condition: Callable[[], bool], within: float = 5.0) -> None:
    for _ in range(int(within / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


def only(b: Balancer) -> Target:
    assert len(b.targets) == 1
    return b.targets[0]


def test_parse_status_line() -> None:
    assert parse_status_line(b"HTTP/1.1 503 Service Unavailable\r\n") == 503
    assert parse_status_line(b"HTTP/1.0 200\r\n") == 200
    assert parse_status_line(b"SSH-2.0-OpenSSH\r\n") is None
    assert parse_status_line(b"HTTP/1.1 2x0 OK\r\n") is None


def test_http_check_goes_unhealthy_on_500_and_back_on_200() -> None:
    async def scenario() -> None:
        server = TinyServer()
        await server.start()
        headers = {"x-probe": ("yes",)}
        b = Balancer(
            cluster(
                ("127.0.0.1", server.port),
                healthchecks=active(http_path="/status", headers=headers),
            )
        )
        t = only(b)
        await b.check_now()
        assert t.healthy
        assert server.requests[0].startswith(b"GET /status HTTP/1.1\r\n")
        assert b"x-probe: yes\r\n" in server.requests[0]
        server.status = 500
        await b.check_now()
        assert t.healthy  # http_failures=2
        await b.check_now()
        assert not t.healthy
        assert t.down_reason == "active"
        assert b.pick(FakeRequest()) is None
        server.status = 200
        await b.check_now()
        await b.check_now()
        assert t.healthy
        assert b.pick(FakeRequest()) is t
        await server.stop()

    run(scenario)


def test_refused_connections_and_timeouts_count_as_failures() -> None:
    async def scenario() -> None:
        server = TinyServer()
        await server.start()
        b = Balancer(cluster(("127.0.0.1", server.port), healthchecks=active(timeout=0.2)))
        t = only(b)
        await server.stop()  # now refuses connections
        await b.check_now()
        assert not t.healthy
        await server.start()  # same port again
        await b.check_now()
        await b.check_now()
        assert t.healthy
        server.silent = True
        await b.check_now()
        assert not t.healthy
        await server.stop()

    run(scenario)


def test_loops_probe_healthy_and_unhealthy_targets_until_stopped() -> None:
    async def scenario() -> None:
        server = TinyServer()
        await server.start()
        checks = active(
            healthy_interval=0.02, unhealthy_interval=0.02, successes=1, http_failures=1
        )
        b = Balancer(cluster(("127.0.0.1", server.port), healthchecks=checks))
        t = only(b)
        await b.start()
        server.status = 503
        await eventually(lambda: not t.healthy)
        server.status = 302
        await eventually(lambda: t.healthy)
        await b.stop()
        assert not [task for task in tasks.running() if task.get_name().startswith("healthcheck:")]
        await server.stop()

    run(scenario)


def test_tcp_check_only_connects() -> None:
    async def scenario() -> None:
        server = TinyServer()
        server.status = 500  # irrelevant to a tcp check
        await server.start()
        b = Balancer(cluster(("127.0.0.1", server.port), healthchecks=active(type="tcp")))
        t = only(b)
        await b.check_now()
        assert t.healthy
        await server.stop()
        await b.check_now()
        assert not t.healthy

    run(scenario)


def test_https_check_with_and_without_certificate_verification() -> None:
    ca = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_tls)

    async def scenario() -> None:
        server = TinyServer(tls=server_tls)
        await server.start()
        unverified = Balancer(
            cluster(
                ("127.0.0.1", server.port),
                healthchecks=active(
                    type="https", https_verify_certificate=False, https_sni="localhost"
                ),
            )
        )
        await unverified.check_now()
        assert only(unverified).healthy
        assert server.requests  # the GET went through TLS
        verified = Balancer(
            cluster(("127.0.0.1", server.port), healthchecks=active(type="https")),
        )
        await verified.check_now()  # our CA is not in the system store
        assert not only(verified).healthy
        await server.stop()

    run(scenario)
