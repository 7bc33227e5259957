"""Proxying basics: methods, bodies both ways, framing, forwarding headers, keep-alive."""

from __future__ import annotations

import asyncio

from engine_kit import (
    Client,
    TestUpstream,
    UpstreamConn,
    get,
    make_config,
    make_route,
    make_service,
    proxy,
    request,
    run,
)


def _setup(up: TestUpstream, **route_fields: object):  # type: ignore[no-untyped-def]
    svc = make_service([up.port])
    return make_config([("/", make_route(svc, **route_fields))]), svc


def test_get_is_proxied_with_forwarding_headers() -> None:
    async def main() -> None:
        up = await TestUpstream().start()
        config, _svc = _setup(up)
        async with proxy(config) as p:
            resp = await request(
                p.port,
                b"GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: example.com:8080\r\n"
                b"Connection: keep-alive, X-Drop-Me\r\nX-Drop-Me: 1\r\nKeep-Alive: timeout=5\r\n"
                b"TE: trailers\r\nProxy-Authorization: secret\r\nX-Keep: yes\r\n"
                b"X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\n\r\n",
            )
            assert resp.status == 200
            echoed = resp.json()
            assert echoed["url"] == "/a/b?x=1&y=2"
            headers = {k.lower(): v for k, v in echoed["headers"]}
            assert headers["host"] == "upstream.internal"
            assert headers["x-keep"] == "yes"
            for gone in ("x-drop-me", "keep-alive", "te", "proxy-authorization", "connection"):
                assert gone not in headers
            # untrusted peer: incoming X-Forwarded-* are overwritten
            assert headers["x-forwarded-for"] == "127.0.0.1"
            assert headers["x-forwarded-proto"] == "http"
            assert headers["x-forwarded-host"] == "example.com"
            assert headers["x-forwarded-port"] == str(p.port)
            assert headers["x-forwarded-path"] == "/a/b"
            assert headers["x-real-ip"] == "127.0.0.1"
            assert headers["via"].startswith("1.1 meshgate/")
            assert resp.header("server") == "test-upstream"
            assert resp.header("via").startswith("1.1 meshgate/")
            record = p.records[-1]
            assert (record.status, record.method, record.path) == (200, "GET", "/a/b")
            assert record.upstream == f"127.0.0.1:{up.port}"
            assert record.service_name == "svc"
            assert record.route_id == "route-1"
            assert record.reason == ""
            assert record.bytes_sent > len(resp.body)
        up.close()

    run(main())


def test_trusted_peer_forwarding_headers_are_kept() -> None:
    async def main() -> None:
        up = await TestUpstream().start()
        config, _ = _setup(up)
        async with proxy(config, trust_forwarded_from=("127.0.0.0/8",)) as p:
            resp = await request(
                p.port,
                get(
                    extra="X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\n"
                    "X-Forwarded-Host: outer.example\r\nX-Real-IP: 6.6.6.6\r\n"
                ),
            )
            headers = {k.lower(): v for k, v in resp.json()["headers"]}
            assert headers["x-forwarded-for"] == "6.6.6.6, 127.0.0.1"
            assert headers["x-forwarded-proto"] == "https"
            assert headers["x-forwarded-host"] == "outer.example"
            assert headers["x-real-ip"] == "6.6.6.6"
        up.close()

    run(main())


def test_preserve_host_sends_the_client_host() -> None:
    async def main() -> None:
        up = await TestUpstream().start()
        config, _ = _setup(up, preserve_host=True)
        async with proxy(config) as p:
            resp = await request(p.port, get(host="client.example:99"))
            headers = {k.lower(): v for k, v in resp.json()["headers"]}
            assert headers["host"] == "client.example:99"
        up.close()

    run(main())


def test_post_content_length_and_chunked_bodies() -> None:
    async def main() -> None:
        up = await TestUpstream().start()
        config, _ = _setup(up)
        async with proxy(config) as p:
            client = await Client.connect(p.port)
            await client.send(
                b"POST /cl HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world"
            )
            r1 = await client.response()
            await client.send(
                b"POST /chunked HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
            )
            r2 = await client.response()
            client.close()
            assert r1.json()["body_len"] == 11, r1
            assert r2.json()["body_len"] == 11, (r2, up.raw)
            assert up.requests[0].body == b"hello world"
            assert up.requests[1].body == b"hello world"
            h1 = {k.lower(): v for k, v in up.requests[0].headers}
            h2 = {k.lower(): v for k, v in up.requests[1].headers}
            assert h1["content-length"] == "11"
            assert "transfer-encoding" not in h1
            assert h2["transfer-encoding"] == "chunked"
            assert "content-length" not in h2
            assert up.connections == 1
        up.close()

    run(main())


def _raw_handler(payload: bytes):  # type: ignore[no-untyped-def]
    def handler(conn: UpstreamConn, seen: object) -> None:
        conn.write(payload)
        if b"Content-Length" not in payload and b"chunked" not in payload:
            assert conn.transport is not None
            conn.transport.close()

    return handler


def test_chunked_response_is_relayed_chunked() -> None:
    async def main() -> None:
        up = await TestUpstream(
            handler=_raw_handler(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n"
            )
        ).start()
        config, _ = _setup(up)
        async with proxy(config) as p:
            client = await Client.connect(p.port)
            await client.send(get())
            resp = await client.response()
            assert resp.status == 200
            assert resp.body == b"abcdefg"
            assert resp.header("transfer-encoding") == "chunked"
            await client.send(get())  # connection still usable
            assert (await client.response()).body == b"abcdefg"
            client.close()
            assert up.connections == 1
        up.close()

    run(main())


def test_close_delimited_response_becomes_chunked_or_close() -> None:
    async def main() -> None:
        up = await TestUpstream(handler=_raw_handler(b"HTTP/1.1 200 OK\r\n\r\nuntil-close")).start()
        config, _ = _setup(up)
        async with proxy(config) as p:
            client = await Client.connect(p.port)
            await client.send(get())
            resp = await client.response()
            assert resp.body == b"until-close"
            assert resp.header("transfer-encoding") == "chunked"
            await client.send(get())
            assert (await client.response()).body == b"until-close"
            client.close()
            # an HTTP/1.0 client gets a close-delimited body
            client = await Client.connect(p.port)
            await client.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            resp = await client.response()
            assert resp.body == b"until-close"
            assert resp.header("transfer-encoding") is None
            assert resp.header("connection") == "close"
            assert client.eof or await client.closed()
            client.close()
        up.close()

    run(main())


def test_http10_client_keep_alive_and_close() -> None:
    async def main() -> None:
        up = await TestUpstream().start()
        config, _ = _setup(up)
        async with proxy(config) as p:
            client = await Client.connect(p.port)
            await client.send(b"GET /1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            resp = await client.response()
            assert resp.status == 200
            assert resp.header("connection") == "keep-alive"
            await client.send(b"GET /2 HTTP/1.0\r\n\r\n")
            resp = await client.response()
            assert resp.status == 200
            assert resp.header("connection") == "close"
            assert await client.closed()
            client.close()
        up.close()

    run(main())


def test_head_204_304_have_no_body_and_keep_the_connection() -> None:
    async def main() -> None:
        def handler(conn: UpstreamConn, seen: object) -> None:
            url = conn.url
            if url == b"/204":
                conn.write(b"HTTP/1.1 204 No Content\r\n\r\n")
            elif url == b"/304":
                conn.write(b"HTTP/1.1 304 Not Modified\r\nETag: x\r\n\r\n")
            else:  # HEAD: announces a length but sends no body
                conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")

        up = await TestUpstream(handler=handler).start()
        config, _ = _setup(up)
        async with proxy(config) as p:
            client = await Client.connect(p.port)
            for _ in range(2):
                await client.send(b"HEAD /h HTTP/1.1\r\nHost: a\r\n\r\n")
                resp = await client.response(head_only=True)
                assert resp.status == 200
                assert resp.header("content-length") == "1000"
                await client.send(get("/204"))
                assert (await client.response()).status == 204
                await client.send(get("/304"))
                resp = await client.response()
                assert resp.status == 304
                assert resp.body == b""
            client.close()
            assert up.connections == 1
            assert len(up.requests) == 6
        up.close()

    run(main())


def test_upstream_keepalive_one_connection_for_100_requests() -> None:
    async def main() -> None:
        up = await TestUpstream().start()
        config, _ = _setup(up)
        async with proxy(config) as p:
            client = await Client.connect(p.port)
            for i in range(100):
                await client.send(get(f"/r{i}"))
                resp = await client.response()
                assert resp.status == 200
                assert resp.json()["url"] == f"/r{i}"
            client.close()
            # several clients in turn still share the pooled connection
            for i in range(5):
                assert (await request(p.port, get(f"/s{i}"))).status == 200
            assert up.connections == 1
            assert p.engine.pools.opened == 1
        up.close()

    run(main())


def test_pipelined_requests_are_answered_in_order() -> None:
    async def main() -> None:
        async def slow_first(conn: UpstreamConn, seen: object) -> None:
            if conn.url == b"/1":
                await asyncio.sleep(0.1)
            body = conn.url
            conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))

        up = await TestUpstream(handler=slow_first).start()
        config, _ = _setup(up)
        async with proxy(config) as p:
            client = await Client.connect(p.port)
            await client.send(get("/1") + get("/2") + b"POST /3 HTTP/1.1\r\nHost: a\r\n"
                              b"Content-Length: 3\r\n\r\nabc" + get("/4"))  # fmt: skip
            bodies = [(await client.response()).body for _ in range(4)]
            assert bodies == [b"/1", b"/2", b"/3", b"/4"]
            assert up.requests[2].body == b"abc"
            client.close()
        up.close()

    run(main())


def test_absolute_form_target_uses_its_host() -> None:
    async def main() -> None:
        up = await TestUpstream().start()
        svc = make_service([up.port])
        config = make_config([("/", make_route(svc, hosts=("abs.example",)))])
        async with proxy(config) as p:
            resp = await request(
                p.port, b"GET http://abs.example/p?q=1 HTTP/1.1\r\nHost: other.example\r\n\r\n"
            )
            assert resp.status == 200
            assert resp.json()["url"] == "/p?q=1"
        up.close()

    run(main())


def test_expect_100_continue() -> None:
    async def main() -> None:
        up = await TestUpstream().start()
        config, _ = _setup(up)
        async with proxy(config) as p:
            client = await Client.connect(p.port)
            await client.send(
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
            )
            interim = await asyncio.wait_for(client.reader.readuntil(b"\r\n\r\n"), 2)
            assert interim.startswith(b"HTTP/1.1 100 Continue")
            await client.send(b"hello")
            resp = await client.response()
            assert resp.status == 200
            assert up.requests[0].body == b"hello"
            assert "expect" not in {k.lower() for k, _ in up.requests[0].headers}
            client.close()
        up.close()

    run(main())
