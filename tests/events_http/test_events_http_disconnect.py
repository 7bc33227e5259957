"""A client that leaves an SSE or WebSocket stream is noticed at once, not at the next
heartbeat: with ``heartbeat_interval`` 15 s, its stream task ends within a second of the close
(graceful FIN and abortive RST alike), and its access-log line says 499."""

from __future__ import annotations

import base64
import json
import socket
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from events_http_kit import SECRET, StreamClient, close_gateway_logs

from meshgate import tasks
from meshgate.proxy.filters.testing_http import LiveGateway, live_gateway, plugin, route

HEARTBEAT_MS = 15_000
NOTICE_WITHIN_S = 1.0


def _plugins(tmp: Path) -> tuple[list[Any], list[Any]]:
    produce = {"embedded": {"path": str(tmp)}, "auto_create_topic": True}
    consume = {**produce,
               "topics": [{"name": "orders"}], "cursor_secret": SECRET,
               "auto_offset_reset": "earliest", "heartbeat_interval": HEARTBEAT_MS}  # fmt: skip
    routes = [route("sse", "/sse", service=None), route("ws", "/ws", service=None),
              route("produce", "/produce", service=None)]  # fmt: skip
    plugins = [
        plugin("kafka-upstream", {**produce, "topic": "orders"}, route="produce"),
        plugin("kafka-consume", {**consume, "mode": "server-sent-events"}, route="sse"),
        plugin("kafka-consume", {**consume, "mode": "websocket"}, route="ws"),
    ]
    return routes, plugins


def _streams(gw: LiveGateway, route_name: str) -> int:
    name = f"plugin kafka-consume route {route_name}"
    return sum(1 for t in tasks.running() if t.get_name() == name and t.get_loop() is gw.loop)


def _seconds_until_none(count: Callable[[], int], limit: float) -> float:
    started = time.monotonic()
    while count() and time.monotonic() - started < limit:
        time.sleep(0.01)
    return time.monotonic() - started


def _close(sock: socket.socket, how: str) -> None:
    if how == "rst":
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@pytest.mark.parametrize("how", ["fin", "rst"])
def test_sse_client_close_ends_stream_at_once(tmp_path: Path, how: str) -> None:
    routes, plugins = _plugins(tmp_path)
    with live_gateway(plugins=plugins, routes=routes) as gw:
        assert gw.request("POST", "/produce", body=b"{}").status == 200  # creates the topic
        clients = [StreamClient(gw.port, "/sse") for _ in range(3)]
        for client in clients:
            assert client.status == 200
            client.sse_events(1)  # the start-cursor block: the stream is running
        assert _streams(gw, "sse") == 3
        _close(clients[0].sock, how)
        took = _seconds_until_none(lambda: _streams(gw, "sse") - 2, 5)
        assert _streams(gw, "sse") == 2, "the closed client's stream is still running"
        assert took < NOTICE_WITHIN_S, f"noticed after {took:.2f}s"
        for client in clients[1:]:
            _close(client.sock, how)
        _seconds_until_none(lambda: _streams(gw, "sse"), 5)
        assert _streams(gw, "sse") == 0
        close_gateway_logs(gw)


def test_sse_stream_of_a_client_that_stays_keeps_running(tmp_path: Path) -> None:
    """The watch must not end streams whose client is still there."""
    routes, plugins = _plugins(tmp_path)
    with live_gateway(plugins=plugins, routes=routes) as gw:
        assert gw.request("POST", "/produce", body=b"{}").status == 200  # creates the topic
        client = StreamClient(gw.port, "/sse")
        client.sse_events(1)
        time.sleep(3 * 0.25 + 0.2)
        assert _streams(gw, "sse") == 1
        client.sock.close()
        _seconds_until_none(lambda: _streams(gw, "sse"), 5)
        close_gateway_logs(gw)


@pytest.mark.parametrize("how", ["fin", "rst"])
def test_websocket_client_vanishing_ends_stream_at_once(tmp_path: Path, how: str) -> None:
    routes, plugins = _plugins(tmp_path)
    with live_gateway(plugins=plugins, routes=routes) as gw:
        assert gw.request("POST", "/produce", body=b"{}").status == 200  # creates the topic
        ws = StreamClient(gw.port, "/ws", {"Upgrade": "websocket", "Connection": "Upgrade",
                          "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                          "Sec-WebSocket-Version": "13"})  # fmt: skip
        assert ws.status == 101
        deadline = time.monotonic() + 5
        while not _streams(gw, "ws") and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _streams(gw, "ws") == 1
        _close(ws.sock, how)  # no close frame: the socket just goes
        took = _seconds_until_none(lambda: _streams(gw, "ws"), 5)
        assert _streams(gw, "ws") == 0
        assert took < NOTICE_WITHIN_S, f"noticed after {took:.2f}s"
        close_gateway_logs(gw)


def _long_poll_plugins(tmp: Path) -> tuple[list[Any], list[Any]]:
    produce = {"embedded": {"path": str(tmp)}, "auto_create_topic": True}
    poll = {**produce, "topics": [{"name": "orders"}], "cursor_secret": SECRET,
            "auto_offset_reset": "latest", "mode": "http-get",
            "long_poll_timeout": 20_000}  # fmt: skip
    routes = [route("get", "/get", service=None), route("produce", "/produce", service=None)]
    plugins = [
        plugin("kafka-upstream", {**produce, "topic": "orders"}, route="produce"),
        plugin("kafka-consume", poll, route="get"),
    ]
    return routes, plugins


def _long_poll(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(b"GET /get?timeout=20000 HTTP/1.1\r\nHost: test\r\n\r\n")
    return sock


@pytest.mark.parametrize("how", ["fin", "rst"])
def test_long_poll_get_of_a_client_that_left_ends_at_once(tmp_path: Path, how: str) -> None:
    """A GET waiting for records (up to 20 s) stops within a second of its client leaving;
    the client that stays still gets the record produced afterwards."""
    routes, plugins = _long_poll_plugins(tmp_path)
    with live_gateway(plugins=plugins, routes=routes) as gw:
        assert gw.request("POST", "/produce", body=b"{}").status == 200  # creates the topic
        leaving, staying = _long_poll(gw.port), _long_poll(gw.port)
        _seconds_until_none(lambda: 2 - _streams(gw, "get"), 5)
        assert _streams(gw, "get") == 2, "both GETs should be waiting"
        _close(leaving, how)
        took = _seconds_until_none(lambda: _streams(gw, "get") - 1, 5)
        assert _streams(gw, "get") == 1, "the departed client's GET is still waiting"
        assert took < NOTICE_WITHIN_S, f"noticed after {took:.2f}s"
        assert gw.request("POST", "/produce", body=b'{"n":1}').status == 200
        answer = b""
        while b"\r\n\r\n" not in answer:
            data = staying.recv(65536)
            assert data, f"connection closed, got {answer!r}"
            answer += data
        head, _, body = answer.partition(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        while len(body) < length:
            body += staying.recv(65536)
        assert head.startswith(b"HTTP/1.1 200 ")
        bodies = [r["value"]["body"] for r in json.loads(body)["records"]]  # kong's envelope
        assert [base64.b64decode(b) for b in bodies] == [b'{"n":1}']
        staying.close()
        close_gateway_logs(gw)
