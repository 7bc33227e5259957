"""``HttpSender``: a small HTTP/1.1 client for log and trace exporters (one keep-alive
connection, a timeout per request, ``http``/``https`` endpoints, TLS not verified as Kong's
log plugins do).  Only what sending a POST and reading the answer needs."""

from __future__ import annotations

import asyncio
import base64
import ssl
import time
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit


class SendError(Exception):
    """The request failed (connect, timeout, malformed answer or a status >= 300)."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    scheme: str
    host: str
    port: int
    target: str  # path?query
    authorization: str | None  # from user info in the URL

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        auth = None
        if parts.username is not None:
            user_info = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            auth = "Basic " + base64.b64encode(user_info.encode()).decode()
        return cls(parts.scheme, parts.hostname, port, target, auth)


def _no_verify_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class HttpSender:
    """Sends requests to one endpoint over a reused connection."""

    def __init__(
        self,
        url: str,
        *,
        method: str = "POST",
        headers: dict[str, str] | None = None,
        timeout: float = 10.0,
        keepalive: float = 60.0,
    ) -> None:
        self.endpoint = Endpoint.parse(url)
        self.method = method
        self.timeout = timeout
        self.keepalive = keepalive
        fixed: dict[str, str] = {}
        if self.endpoint.authorization:
            fixed["Authorization"] = self.endpoint.authorization
        for name, value in (headers or {}).items():
            if name.lower() not in {n.lower() for n in fixed}:
                fixed[name] = value
        default_port = 443 if self.endpoint.scheme == "https" else 80
        host = self.endpoint.host
        host = f"[{host}]" if ":" in host else host
        if self.endpoint.port != default_port:
            host = f"{host}:{self.endpoint.port}"
        self._head_start = f"{method} {self.endpoint.target} HTTP/1.1\r\nHost: {host}\r\n"
        self._fixed = "".join(f"{n}: {v}\r\n" for n, v in fixed.items())
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._idle_since = 0.0
        self._lock = asyncio.Lock()

    async def send(self, body: bytes, content_type: str) -> int:
        """POST (or the configured method) ``body``; the status, or ``SendError``."""
        async with self._lock:
            try:
                return await asyncio.wait_for(self._exchange(body, content_type), self.timeout)
            except TimeoutError:
                self._drop()
                raise SendError(f"timeout after {self.timeout}s") from None
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                self._drop()
                raise SendError(f"{type(exc).__name__}: {exc}") from None

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._writer is not None and self._reader is not None:
            stale = time.monotonic() - self._idle_since > self.keepalive
            if stale or self._writer.is_closing() or self._reader.at_eof():
                self._drop()
            else:
                return self._reader, self._writer
        ep = self.endpoint
        context = _no_verify_context() if ep.scheme == "https" else None
        self._reader, self._writer = await asyncio.open_connection(ep.host, ep.port, ssl=context)
        return self._reader, self._writer

    async def _exchange(self, body: bytes, content_type: str) -> int:
        reader, writer = await self._connection()
        head = (
            f"{self._head_start}{self._fixed}Content-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        writer.write(head.encode("latin-1") + body)
        await writer.drain()
        status, close = await _read_response(reader)
        if close:
            self._drop()
        else:
            self._idle_since = time.monotonic()
        if status >= 300:
            raise SendError(f"{self.endpoint.host}:{self.endpoint.port} answered {status}")
        return status

    def _drop(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None

    async def close(self) -> None:
        writer = self._writer
        self._drop()
        if writer is not None:
            try:
                await asyncio.wait_for(writer.wait_closed(), 1.0)
            except (OSError, TimeoutError):
                pass


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one response; (status, whether the server closes the connection)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise ValueError(f"bad status line {lines[0]!r}")
    status = int(parts[1])
    length = 0
    chunked = False
    close = parts[0] == "HTTP/1.0"
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        value = value.strip()
        if name == "content-length":
            length = int(value)
        elif name == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
        elif name == "connection":
            close = value.lower() == "close"
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    elif status >= 200 and status not in (204, 304) and close:
        await reader.read()
    return status, close
