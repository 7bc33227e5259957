"""An answer given before the request body is all in (no route, a plugin's exit...): the
rest of a small body of known length is read and dropped and the connection serves the next
request, as nginx discards a body; a large or chunked rest, or a 413, closes it."""

from __future__ import annotations

import asyncio

import pytest
from engine_kit import (
    Client,
    Seen,
    TestUpstream,
    UpstreamConn,
    make_config,
    make_route,
    make_service,
    proxy,
    run,
)

from meshgate.proxy.http.request import DISCARD_MAX


def post_head(length: int, extra: str = "") -> bytes:
    return (f"POST /nowhere HTTP/1.1\r\nHost: a\r\nContent-Length: {length}\r\n{extra}\r\n"
            ).encode()  # fmt: skip


def test_an_early_answer_drops_the_rest_of_a_small_body_and_keeps_the_connection() -> None:
    async def scenario() -> None:
        async with proxy(make_config([])) as p:
            client = await Client.connect(p.port)
            await client.send(post_head(10_000))  # no route: 404 before any body byte
            first = await client.response()
            assert (first.status, first.keep_alive) == (404, True)
            assert first.header("connection") is None
            # the body, then a pipelined request whose bytes a dropped body must not eat
            await client.send(b"x" * 10_000 + b"GET /again HTTP/1.1\r\nHost: a\r\n\r\n")
            second = await client.response()
            assert second.status == 404
            assert [r.path for r in p.records] == ["/nowhere", "/again"]
            client.close()

    run(scenario())


@pytest.mark.parametrize(
    "head",
    [
        post_head(DISCARD_MAX + 1),
        b"POST /nowhere HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
    ],
    ids=["large-rest", "chunked"],
)
def test_a_large_or_unknown_rest_closes_the_connection(head: bytes) -> None:
    async def scenario() -> None:
        async with proxy(make_config([])) as p:
            client = await Client.connect(p.port)
            await client.send(head)
            answer = await client.response()
            assert (answer.status, answer.keep_alive) == (404, False)
            assert answer.header("connection") == "close"
            assert await client.closed()

    run(scenario())


def test_a_body_that_stalls_after_an_early_answer_just_closes_the_connection() -> None:
    async def scenario() -> None:
        async with proxy(make_config([]), client_body_timeout=0.3) as p:
            client = await Client.connect(p.port)
            await client.send(post_head(10_000) + b"x" * 100)  # then nothing more
            answer = await client.response()
            assert (answer.status, answer.keep_alive) == (404, True)
            rest = await asyncio.wait_for(client.reader.read(), 5)  # up to EOF
            assert rest == b""  # no second (408) answer after the 404
            assert [(r.path, r.status) for r in p.records] == [("/nowhere", 404)]

    run(scenario())


def test_an_upstream_answering_before_the_body_keeps_the_client_not_that_connection() -> None:
    async def scenario() -> None:
        up = await TestUpstream().start()

        def refuse_at_head(conn: UpstreamConn, seen: Seen) -> None:
            if seen.method == "POST":  # answers without reading the body
                conn.write(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")

        up.on_head = refuse_at_head
        async with proxy(make_config([("/", make_route(make_service([up.port])))])) as p:
            client = await Client.connect(p.port)
            await client.send(b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\n")
            first = await client.response()
            assert (first.status, first.keep_alive) == (401, True)
            await client.send(b"y" * 5000 + b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
            second = await client.response()
            assert second.status == 200
            assert second.json()["url"] == "/next"  # not glued to the half-sent POST body
            assert up.connections == 2  # the half-sent request's connection was not reused

    run(scenario())
