"""Tiny echo upstreams for the demo: each answers with JSON describing the request it got.

They speak just enough HTTP/1.1 (keep-alive, Content-Length and chunked request bodies) to
stand behind the gateway in ``make run`` and in tests; they are not part of the proxy path.
A request header ``x-echo-delay: SECONDS`` delays the answer (for timeout and drain tests).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

import httptools


@dataclass(slots=True)
class _Request:
    method: str = ""
    url: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)


class EchoProtocol(asyncio.Protocol):
    """One connection to an echo upstream."""

    def __init__(self, name: str, counters: dict[str, int]) -> None:
        self._name = name
        self._counters = counters
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._request = _Request()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport
        self._counters["connections"] = self._counters.get("connections", 0) + 1

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            if self._transport is not None:
                self._transport.write(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                self._transport.close()

    def on_message_begin(self) -> None:
        self._request = _Request()

    def on_url(self, url: bytes) -> None:
        self._request.url += url.decode("latin-1")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._request.headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_body(self, body: bytes) -> None:
        self._request.body += body

    def on_message_complete(self) -> None:
        self._counters["requests"] = self._counters.get("requests", 0) + 1
        req = self._request
        req.method = self._parser.get_method().decode()
        keep_alive = self._parser.should_keep_alive()
        delay = next((v for k, v in req.headers if k.lower() == "x-echo-delay"), None)
        if delay is None:
            self._respond(req, keep_alive)
            return
        # Pipelined requests are not expected by anything that asks for a delay.
        if self._transport is not None:
            self._transport.pause_reading()
        asyncio.get_running_loop().call_later(float(delay), self._respond_later, req, keep_alive)

    def _respond_later(self, req: _Request, keep_alive: bool) -> None:
        if self._transport is None or self._transport.is_closing():
            return
        self._transport.resume_reading()
        self._respond(req, keep_alive)

    def _respond(self, req: _Request, keep_alive: bool) -> None:
        payload = {
            "upstream": self._name,
            "method": req.method,
            "url": req.url,
            "headers": {k.lower(): v for k, v in req.headers},
            "body_bytes": len(req.body),
        }
        body = json.dumps(payload, indent=1).encode() + b"\n"
        head = (
            f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nx-upstream: {self._name}\r\n"
        )
        if not keep_alive:
            head += "connection: close\r\n"
        assert self._transport is not None
        self._transport.write(head.encode() + b"\r\n" + (b"" if req.method == "HEAD" else body))
        if not keep_alive:
            self._transport.close()


async def start_echo_upstream(
    name: str, host: str = "127.0.0.1", port: int = 0
) -> tuple[asyncio.Server, dict[str, int]]:
    """Start one echo upstream; returns the server and its connection/request counters."""
    counters: dict[str, int] = {}
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: EchoProtocol(name, counters), host, port)
    return server, counters
