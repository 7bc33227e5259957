"""Local receivers for the Admin-API-configured log and trace plugins: an HTTP server (an
http-log receiver, an OTLP/HTTP collector) and a TCP server, each in a thread, recording
what they get, and ``wait_until`` to poll for it."""

from __future__ import annotations

import socketserver
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class HttpSink:
    """Records every POST/PUT as (path, headers, body) and answers 200."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _record(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                sink.requests.append((self.path, headers, body))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            do_POST = do_PUT = _record

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class TcpSink:
    """Records the bytes every connection sends."""

    def __init__(self) -> None:
        self.data = bytearray()
        sink = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                while chunk := self.request.recv(65536):
                    sink.data.extend(chunk)

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def lines(self) -> list[bytes]:
        return [line for line in bytes(self.data).split(b"\n") if line]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def wait_until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``check`` until it holds; the timeout only bounds a broken delivery."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)
