"""Malformed, ambiguous and oversized requests: each gets its status and the connection closes."""

from __future__ import annotations

import asyncio

import pytest
from engine_kit import Client, TestUpstream, make_config, make_route, make_service, proxy, run

H = b"Host: a\r\n"

CASES = [
    ("garbage request line", b"HELLO\r\n\r\n", 400, "bad-request"),
    ("bad method", b"G@T / HTTP/1.1\r\n" + H + b"\r\n", 400, "bad-request"),
    ("bad version", b"GET / HTTP/2.1\r\n" + H + b"\r\n", 400, "bad-request"),
    ("http/0.9", b"GET /\r\n\r\n", 400, "bad-version"),
    ("space in url", b"GET /a b HTTP/1.1\r\n" + H + b"\r\n", 400, "bad-request"),
    ("missing host", b"GET / HTTP/1.1\r\n\r\n", 400, "bad-request"),
    ("two hosts", b"GET / HTTP/1.1\r\n" + H + H + b"\r\n", 400, "bad-request"),
    (
        "CL and TE",
        b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
        "bad-request",
    ),
    (
        "duplicate CL",
        b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
        400,
        "bad-request",
    ),
    (
        "conflicting CL",
        b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        400,
        "bad-request",
    ),
    (
        "CL list",
        b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5, 5\r\n\r\nhello",
        400,
        "bad-request",
    ),
    (
        "negative CL",
        b"POST / HTTP/1.1\r\n" + H + b"Content-Length: -1\r\n\r\n",
        400,
        "bad-request",
    ),
    ("obs-fold", b"GET / HTTP/1.1\r\n" + H + b"X-A: b\r\n c\r\n\r\n", 400, "bad-request"),
    (
        "bad chunk size",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        400,
        "bad-request",
    ),
    (
        "chunk size overflow",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
        b"fffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
        400,
        "bad-request",
    ),
    (
        "TE not chunked",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip\r\n\r\n",
        400,
        "bad-request",
    ),
    (
        "TE chunked not last",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, gzip\r\n\r\n",
        400,
        "bad-request",
    ),
    (
        "TE unknown coding",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        501,
        "unsupported-transfer-encoding",
    ),
    ("NUL in value", b"GET / HTTP/1.1\r\n" + H + b"X-A: b\x00c\r\n\r\n", 400, "bad-request"),
    ("CR in value", b"GET / HTTP/1.1\r\n" + H + b"X-A: b\rc\r\n\r\n", 400, "bad-request"),
    ("LF-only lines", b"GET / HTTP/1.1\n" + b"Host: a\n\n", 400, "bad-request"),
    ("space in name", b"GET / HTTP/1.1\r\n" + H + b"X A: b\r\n\r\n", 400, "bad-request"),
    ("space before colon", b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400, "bad-request"),
    ("CONNECT", b"CONNECT a:443 HTTP/1.1\r\n" + H + b"\r\n", 405, "method-not-allowed"),
    ("bad target", b"GET a/b HTTP/1.1\r\n" + H + b"\r\n", 400, "bad-request"),
    (
        "expect other",
        b"GET / HTTP/1.1\r\n" + H + b"Expect: magic\r\n\r\n",
        417,
        "expectation-failed",
    ),
    (
        "h2c upgrade with body",
        b"POST / HTTP/1.1\r\n" + H + b"Connection: Upgrade\r\n"
        b"Upgrade: h2c\r\nContent-Length: 3\r\n\r\nabc",
        400,
        "bad-request",
    ),
]


@pytest.mark.parametrize(("raw", "status", "reason"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_bad_request_is_refused_and_connection_closed(raw: bytes, status: int, reason: str) -> None:
    async def main() -> None:
        up = await TestUpstream().start()
        config = make_config([("/", make_route(make_service([up.port])))])
        async with proxy(config) as p:
            client = await Client.connect(p.port)
            await client.send(raw)
            resp = await client.response()
            assert resp.status == status
            assert resp.header("meshgate-error") == reason
            assert resp.header("connection") == "close"
            assert client.eof or await client.closed()
            client.close()
            assert up.requests == []  # nothing reached the upstream
            assert p.records
            assert p.records[-1].status == status
        up.close()

    run(main())


def test_header_block_over_limit_gets_431() -> None:
    async def main() -> None:
        config = make_config([])
        async with proxy(config, max_header_bytes=4096) as p:
            for raw in (
                b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"x" * 5000 + b"\r\n\r\n",
                # never-ending header: refused before it ends
                b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"x" * 5000,
                b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(600)),
            ):
                client = await Client.connect(p.port)
                await client.send(raw)
                resp = await client.response()
                assert resp.status == 431
                assert resp.header("meshgate-error") == "header-too-large"
                assert client.eof or await client.closed()
                client.close()

    run(main())


def test_url_over_limit_gets_414() -> None:
    async def main() -> None:
        async with proxy(make_config([]), max_url_bytes=1000) as p:
            client = await Client.connect(p.port)
            await client.send(b"GET /" + b"a" * 2000 + b" HTTP/1.1\r\nHost: a\r\n\r\n")
            resp = await client.response()
            assert resp.status == 414
            client.close()

    run(main())


def test_body_over_limit_gets_413() -> None:
    async def main() -> None:
        up = await TestUpstream().start()
        config = make_config([("/", make_route(make_service([up.port])))])
        async with proxy(config, max_body_bytes=100) as p:
            # declared too big: refused before any body byte
            client = await Client.connect(p.port)
            await client.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 101\r\n\r\n")
            resp = await client.response()
            assert resp.status == 413
            assert resp.header("meshgate-error") == "request-too-large"
            client.close()
            # chunked, found too big while streaming
            client = await Client.connect(p.port)
            await client.send(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
            await client.send(b"64\r\n" + b"a" * 100 + b"\r\n")
            await client.send(b"1\r\nb\r\n0\r\n\r\n")
            resp = await client.response()
            assert resp.status == 413
            assert client.eof or await client.closed()
            client.close()
            # at the limit: fine
            resp_ok = await _post(p.port, b"a" * 100)
            assert resp_ok.status == 200
        up.close()

    run(main())


async def _post(port: int, body: bytes):  # type: ignore[no-untyped-def]
    client = await Client.connect(port)
    await client.send(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    )
    resp = await client.response()
    client.close()
    return resp


def test_slow_header_gets_408() -> None:
    async def main() -> None:
        async with proxy(make_config([]), client_header_timeout=0.3) as p:
            client = await Client.connect(p.port)
            await client.send(b"GET / HTTP/1.1\r\nHost: a\r\n")  # never finishes the head
            resp = await client.response()
            assert resp.status == 408
            assert resp.header("meshgate-error") == "client-header-timeout"
            assert client.eof or await client.closed()
            client.close()

    run(main())


def test_slow_body_gets_408_and_idle_keepalive_is_closed() -> None:
    async def main() -> None:
        up = await TestUpstream().start()
        config = make_config([("/", make_route(make_service([up.port])))])
        async with proxy(config, client_body_timeout=0.3, keepalive_timeout=0.3) as p:
            client = await Client.connect(p.port)
            await client.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
            resp = await client.response()
            assert resp.status == 408
            assert resp.header("meshgate-error") == "client-body-timeout"
            client.close()
            client = await Client.connect(p.port)
            await client.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            assert (await client.response()).status == 200
            started = asyncio.get_running_loop().time()
            assert await client.closed()  # idle keep-alive connection closed silently
            assert asyncio.get_running_loop().time() - started < 1.5
            client.close()
        up.close()

    run(main())


def test_http10_without_host_is_fine_and_trailers_are_dropped() -> None:
    async def main() -> None:
        up = await TestUpstream().start()
        config = make_config([("/", make_route(make_service([up.port])))])
        async with proxy(config) as p:
            client = await Client.connect(p.port)
            await client.send(b"GET / HTTP/1.0\r\n\r\n")
            assert (await client.response()).status == 200
            client.close()
            client = await Client.connect(p.port)
            await client.send(
                b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"3\r\nabc\r\n0\r\nX-Trailer: evil\r\n\r\n"
            )
            assert (await client.response()).status == 200
            client.close()
            assert b"X-Trailer" not in b"".join(up.raw)
        up.close()

    run(main())
