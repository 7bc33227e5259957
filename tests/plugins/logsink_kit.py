"""Local receivers for the log/trace plugin tests: an HTTP server and a TCP server on
127.0.0.1, each in a thread, recording what they get."""

from __future__ import annotations

import socket
import socketserver
import ssl
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class HttpSink:
    """Records every request: (method, path, headers, body); answers ``status``."""

    def __init__(self, status: int = 200) -> None:
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.status = status
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                sink.requests.append((self.command, self.path, headers, body))
                self.send_response(sink.status)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            do_POST = do_PUT = do_PATCH = _handle

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/logs"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class TcpSink:
    """Records the bytes each connection sends (optionally over TLS)."""

    def __init__(self, context: ssl.SSLContext | None = None) -> None:
        self.data = bytearray()
        self.connections = 0
        sink = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                sink.connections += 1
                conn: socket.socket = self.request
                if context is not None:
                    conn = context.wrap_socket(conn, server_side=True)
                with conn:
                    while True:
                        try:
                            chunk = conn.recv(65536)
                        except OSError:
                            return
                        if not chunk:
                            return
                        sink.data.extend(chunk)

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def lines(self) -> list[bytes]:
        return [line for line in bytes(self.data).split(b"\n") if line]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def closed_port() -> int:
    """A port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


async def await_until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    import asyncio

    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)
