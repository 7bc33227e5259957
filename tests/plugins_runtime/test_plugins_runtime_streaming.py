"""Plugins answering on their own: streamed bodies (ctx.stream) and taken-over connections
(ctx.upgrade)."""

from __future__ import annotations

import socket
import time

from runtime_handlers import ALL, LOGGED, STREAM_EVENTS

from meshgate.proxy.filters.testing_http import live_gateway, plugin


def wait_until(check: object, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def test_streamed_response_is_chunked_and_connection_reusable() -> None:
    LOGGED.clear()
    plugins = [
        plugin("streamer", route="r1"),
        plugin("correlation-id", {"echo_downstream": True}),
        plugin("logger"),
    ]
    with live_gateway(plugins=plugins, handlers=ALL) as gw:
        res = gw.request("GET", "/r1")
        assert res.status == 200
        assert res.header("Transfer-Encoding") == "chunked"
        assert res.header("Content-Type") == "text/event-stream"
        assert res.header("Kong-Request-ID")  # the response phase ran on the head
        assert res.body == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"
        assert gw.request("GET", "/r2").status == 200  # same connection, next request proxied
        wait_until(lambda: len(LOGGED) == 2)
        assert LOGGED[0]["response"]["status"] == 200
        assert LOGGED[0]["upstream_status"] is None


def test_stream_sees_the_client_leave() -> None:
    STREAM_EVENTS.clear()
    with live_gateway(plugins=[plugin("streamer", route="r1")], handlers=ALL) as gw:
        with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as sock:
            sock.sendall(b"GET /r1 HTTP/1.1\r\nHost: t\r\nX-Hold: 1\r\n\r\n")
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        wait_until(lambda: STREAM_EVENTS == ["client-gone"])
        assert gw.request("GET", "/r2").status == 200


def test_plugin_takes_over_an_upgraded_connection() -> None:
    with (
        live_gateway(plugins=[plugin("echoer", route="r1")], handlers=ALL) as gw,
        socket.create_connection(("127.0.0.1", gw.port), timeout=5) as sock,
    ):
        if True:
            sock.sendall(
                b"GET /r1 HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                b"\r\nearly"
            )
            received = b""
            while b"EARLY" not in received:
                chunk = sock.recv(4096)
                assert chunk, received
                received += chunk
            assert received.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
            assert b"Upgrade: websocket" in received
            sock.sendall(b"bye")
            tail = b""
            while True:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                tail += chunk
            assert tail == b"BYE"
