"""Errors the proxy answers itself: no route, https-only, no service/peer, upstream failures,
retries to other targets, timeouts, and the keep-alive race."""

from __future__ import annotations

import asyncio
import socket

from engine_kit import (
    Client,
    Seen,
    TestUpstream,
    UpstreamConn,
    echo_handler,
    get,
    make_config,
    make_route,
    make_service,
    proxy,
    request,
    run,
)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_no_route_is_404_with_kong_message() -> None:
    async def main() -> None:
        async with proxy(make_config([])) as p:
            resp = await request(p.port, get())
            assert resp.status == 404
            assert resp.json() == {"message": "no Route matched with those values"}
            assert resp.header("meshgate-error") == "no-route"
            assert resp.header("content-type").startswith("application/json")
            assert p.records[-1].reason == "no-route"
            # the connection stays usable after a 404
            client = await Client.connect(p.port)
            for _ in range(2):
                await client.send(get())
                assert (await client.response()).status == 404

    run(main())


def test_https_only_route_gets_426_or_redirect() -> None:
    async def main() -> None:
        up = await TestUpstream().start()
        svc = make_service([up.port])
        config = make_config(
            [
                (
                    "/moved",
                    make_route(svc, id="r2", protocols=("https",), https_redirect_status_code=301),
                ),
                ("/", make_route(svc, protocols=("https",))),
            ]
        )
        async with proxy(config) as p:
            resp = await request(p.port, get("/x", host="secure.example"))
            assert resp.status == 426
            assert resp.json() == {"message": "Please use HTTPS protocol"}
            assert resp.header("upgrade") == "TLS/1.2, HTTP/1.1"
            assert resp.header("connection") == "Upgrade"
            resp = await request(p.port, get("/moved/a?b=1", host="secure.example:8000"))
            assert resp.status == 301
            assert resp.header("location") == "https://secure.example/moved/a?b=1"
            assert up.requests == []
        async with proxy(config, trust_forwarded_from=("127.0.0.1",)) as p:
            resp = await request(p.port, get("/x", extra="X-Forwarded-Proto: https\r\n"))
            assert resp.status == 200  # a trusted TLS terminator in front

    run(main())


def test_route_without_service_and_no_healthy_target_are_503() -> None:
    async def main() -> None:
        config = make_config(
            [("/none", make_route(None, id="r0")), ("/", make_route(make_service([])))]
        )
        async with proxy(config) as p:
            resp = await request(p.port, get("/none"))
            assert resp.status == 503
            assert resp.header("meshgate-error") == "no-service"
            resp = await request(p.port, get("/"))
            assert resp.status == 503
            assert resp.json() == {"message": "failure to get a peer from the ring-balancer"}
            assert resp.header("meshgate-error") == "no-healthy-target"

    run(main())


def test_connect_refused_is_502_and_retries_go_to_another_target() -> None:
    async def main() -> None:
        up = await TestUpstream().start()
        dead = _closed_port()
        alone = make_service([dead], retries=3)
        pair = make_service([dead, up.port], name="pair", retries=1)
        config = make_config([("/alone", make_route(alone, id="ra")), ("/", make_route(pair))])
        async with proxy(config) as p:
            resp = await request(p.port, get("/alone"))
            assert resp.status == 502
            assert resp.json() == {
                "message": "An invalid response was received from the upstream server"
            }
            assert resp.header("meshgate-error") == "upstream-connect-refused"
            assert len(alone.balancer.picked) == 4  # first try + 3 retries (all on the only one)
            assert [r[1] for r in alone.balancer.reports] == ["tcp_error"] * 4
            resp = await request(p.port, get("/"))
            assert resp.status == 200
            bal = pair.balancer
            assert [t.port for t in bal.picked] == [dead, up.port]
            assert bal.reports[0][1:] == ("tcp_error", None)
            assert bal.reports[-1][1:] == ("http", 200)
            assert bal.started == bal.ended == 2
            assert p.records[-1].upstream == f"127.0.0.1:{up.port}"

    run(main())


def test_connect_timeout_is_504() -> None:
    async def main() -> None:
        # A listener whose accept queue is full drops new SYNs: connects hang.
        blackhole = socket.socket()
        blackhole.bind(("127.0.0.1", 0))
        blackhole.listen(0)
        port = blackhole.getsockname()[1]
        fillers = []
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            try:
                filler.connect(("127.0.0.1", port))
            except BlockingIOError:
                pass
            fillers.append(filler)
        await asyncio.sleep(0.05)
        svc = make_service([port], connect_timeout=0.3)
        async with proxy(make_config([("/", make_route(svc))])) as p:
            resp = await request(p.port, get())
            assert resp.status == 504
            assert resp.json() == {"message": "The upstream server is timing out"}
            assert resp.header("meshgate-error") == "upstream-connect-timeout"
            assert svc.balancer.reports[0][1] == "timeout"
        for filler in fillers:
            filler.close()
        blackhole.close()

    run(main())


def test_read_timeout_is_504() -> None:
    async def main() -> None:
        up = await TestUpstream(handler=lambda conn, seen: None).start()  # never answers
        svc = make_service([up.port], read_timeout=0.3)
        async with proxy(make_config([("/", make_route(svc))])) as p:
            started = asyncio.get_running_loop().time()
            resp = await request(p.port, get())
            assert resp.status == 504
            assert resp.header("meshgate-error") == "upstream-read-timeout"
            assert 0.25 < asyncio.get_running_loop().time() - started < 2
            assert p.records[-1].reason == "upstream-read-timeout"

    run(main())


def test_upstream_closing_or_garbage_is_502() -> None:
    async def main() -> None:
        def handler(conn: UpstreamConn, seen: Seen) -> None:
            assert conn.transport is not None
            if seen.url == "/garbage":
                conn.write(b"SPDY/9 what\r\n\r\n")
            else:
                conn.transport.close()

        up = await TestUpstream(handler=handler).start()
        svc = make_service([up.port])
        async with proxy(make_config([("/", make_route(svc))])) as p:
            for path in ("/close", "/garbage"):
                resp = await request(p.port, get(path))
                assert resp.status == 502
                assert resp.header("meshgate-error") == "upstream-bad-response"

    run(main())


def test_upstream_dying_mid_body_aborts_the_client() -> None:
    async def main() -> None:
        def handler(conn: UpstreamConn, seen: Seen) -> None:
            assert conn.transport is not None
            conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly-part")
            conn.transport.abort()

        up = await TestUpstream(handler=handler).start()
        async with proxy(make_config([("/", make_route(make_service([up.port])))])) as p:
            client = await Client.connect(p.port)
            await client.send(get())
            data = b""
            while chunk := await client.reader.read(65536):
                data += chunk
            assert data.startswith(b"HTTP/1.1 200 OK")
            assert data.endswith(b"only-part")
            assert p.records[-1].reason == "upstream-closed-mid-response"

    run(main())


def test_keepalive_race_retries_replayable_requests_on_a_fresh_connection() -> None:
    async def main() -> None:
        served: dict[int, int] = {}

        def handler(conn: UpstreamConn, seen: Seen) -> None:
            count = served[id(conn)] = served.get(id(conn), 0) + 1
            assert conn.transport is not None
            if count == 2:  # the server gave up on this connection just as the request came
                conn.transport.abort()
            else:
                echo_handler(conn, seen)

        up = await TestUpstream(handler=handler).start()
        async with proxy(make_config([("/", make_route(make_service([up.port])))])) as p:
            client = await Client.connect(p.port)
            await client.send(get("/1"))
            assert (await client.response()).status == 200
            await client.send(get("/2"))  # pooled connection dies: retried transparently
            resp = await client.response()
            assert resp.status == 200
            assert resp.json()["url"] == "/2"
            assert up.connections == 2
            await client.send(get("/3"))
            assert (await client.response()).status == 200
            # a request with a body is not replayed
            await client.send(b"POST /4 HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx")
            resp = await client.response()
            assert resp.status == 502
            assert resp.header("meshgate-error") == "upstream-bad-response"

    run(main())


def test_idle_pooled_connection_closed_by_upstream_is_not_reused() -> None:
    async def main() -> None:
        def handler(conn: UpstreamConn, seen: Seen) -> None:
            echo_handler(conn, seen)
            assert conn.transport is not None
            asyncio.get_running_loop().call_later(0.05, conn.transport.close)

        up = await TestUpstream(handler=handler).start()
        async with proxy(make_config([("/", make_route(make_service([up.port])))])) as p:
            assert (await request(p.port, get())).status == 200
            await asyncio.sleep(0.2)
            assert p.engine.pools.idle_count() == 0
            assert (await request(p.port, get())).status == 200
            assert up.connections == 2

    run(main())


def test_upstream_connection_close_is_not_pooled_and_idle_timeout_closes() -> None:
    async def main() -> None:
        def handler(conn: UpstreamConn, seen: Seen) -> None:
            close = seen.url == "/close"
            conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n%s\r\nok"
                       % (b"Connection: close\r\n" if close else b""))  # fmt: skip
            if close:
                assert conn.transport is not None
                conn.transport.close()

        up = await TestUpstream(handler=handler).start()
        config = make_config([("/", make_route(make_service([up.port])))])
        async with proxy(config, upstream_keepalive_idle_timeout=0.3) as p:
            resp = await request(p.port, get("/close"))
            assert resp.status == 200
            assert resp.header("connection") is None
            assert p.engine.pools.idle_count() == 0
            assert (await request(p.port, get("/keep"))).status == 200
            assert p.engine.pools.idle_count() == 1
            await asyncio.sleep(0.6)
            assert p.engine.pools.idle_count() == 0
            assert not up.open

    run(main())
