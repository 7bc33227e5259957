"""An answer given before the request body is all in (no route, a plugin's exit...): the
rest of a small body of known length is read and dropped and the connection serves the next
request, as nginx discards a body; a large or chunked rest, or a 413, closes it."""

from __future__ import annotations

import pytest
from engine_kit import Client, make_config, proxy, run

from meshgate.proxy.http.server_base import DISCARD_MAX


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
