"""The Python floor: the least an HTTP/1.1 proxy on uvloop + httptools can do per request.

One upstream keep-alive connection per client connection, opened when the client connects;
each request's head is parsed by httptools and rebuilt (method, target, the client's header
lines), the body is passed on, and the upstream's response goes back to the client as the
bytes it came in, once httptools has seen it end. No routing, no header rules, no timeouts,
no logging, no plugins: what is left is the event loop, the parser and the four socket
calls. The bench runs it beside meshgate (system ``pyfloor``) so that meshgate's own cost per
request shows as the difference to a Python proxy on the same engine, measured in the same
run. Not a proxy to use: no error handling beyond closing both sides.

Usage: ``python bench/floor_proxy.py LISTEN_PORT UPSTREAM_PORT``
"""

from __future__ import annotations

import asyncio
import sys
from typing import cast

import httptools
import uvloop

from meshgate.tasks import spawn


class _Upstream(asyncio.Protocol):
    def __init__(self, client: _Client) -> None:
        self.client = client
        self.parser = httptools.HttpResponseParser(self)
        self.chunks: list[bytes] = []
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport = cast(asyncio.Transport, transport)
        for data in self.client.waiting:
            transport.write(data)
        self.client.waiting = []

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self.parser.feed_data(data)

    def on_message_complete(self) -> None:
        assert self.client.transport is not None
        self.client.transport.write(b"".join(self.chunks))
        self.chunks = []

    def connection_lost(self, exc: Exception | None) -> None:
        if self.client.transport is not None:
            self.client.transport.close()


class _Client(asyncio.Protocol):
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.upstream = _Upstream(self)
        self.waiting: list[bytes] = []
        self.url = b""
        self.lines: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        loop = asyncio.get_running_loop()
        spawn(loop.create_connection(lambda: self.upstream, "127.0.0.1", self.upstream_port),
              name="floor-upstream-connect")  # fmt: skip

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_url(self, url: bytes) -> None:
        self.url = url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.lines.append(name + b": " + value + b"\r\n")

    def on_headers_complete(self) -> None:
        method = self.parser.get_method()
        self._send(b"%s %s HTTP/1.1\r\n%s\r\n" % (method, self.url, b"".join(self.lines)))
        self.lines = []

    def on_body(self, body: bytes) -> None:
        self._send(body)

    def _send(self, data: bytes) -> None:
        transport = self.upstream.transport
        if transport is None:
            self.waiting.append(data)
        else:
            transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.upstream.transport is not None:
            self.upstream.transport.close()


async def _serve(port: int, upstream_port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Client(upstream_port), "127.0.0.1", port,
                                      backlog=1024)  # fmt: skip
    await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(_serve(int(sys.argv[1]), int(sys.argv[2])))
