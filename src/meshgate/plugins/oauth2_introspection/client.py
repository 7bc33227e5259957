"""A small HTTP/1.1 client for the introspection endpoint: POST a form, read a bounded
response; idle keep-alive connections are reused (at most ``max_idle``, each for
``keepalive`` seconds).  ``parse_head``/``read_body`` do the HTTP parsing; the rest is
asyncio streams.  Responses over ``MAX_BODY`` bytes are an error, as are malformed ones."""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_HEAD = 32 * 1024
MAX_BODY = 1024 * 1024


class ClientError(Exception):
    """The endpoint could not be reached or answered with something unusable."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    scheme: str
    host: str
    port: int
    target: str  # path?query as sent

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("expected an http or https URL with a host")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        return cls(parts.scheme, parts.hostname, port, target)

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


def parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    """Status and lower-case headers (repeated ones joined with ", ") of a response head."""
    lines = head.split(b"\r\n")
    status_line = lines[0].split(b" ", 2)
    if len(status_line) < 2 or not status_line[0].startswith(b"HTTP/1."):
        raise ClientError("malformed status line")
    try:
        status = int(status_line[1])
    except ValueError:
        raise ClientError("malformed status code") from None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, colon, value = line.partition(b":")
        if not colon:
            raise ClientError("malformed header line")
        key = name.strip().lower().decode("latin-1")
        text = value.strip().decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return status, headers


async def read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> tuple[bytes, bool]:
    """The body and whether the connection can be reused after it."""
    reusable = "close" not in headers.get("connection", "").lower()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        pieces: list[bytes] = []
        size_total = 0
        while True:
            line = await reader.readuntil(b"\r\n")
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                raise ClientError("malformed chunk size") from None
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                return b"".join(pieces), reusable
            size_total += size
            if size_total > MAX_BODY:
                raise ClientError("response body too large")
            pieces.append(await reader.readexactly(size))
            await reader.readexactly(2)
    length = headers.get("content-length")
    if length is not None:
        try:
            size = int(length)
        except ValueError:
            raise ClientError("malformed content-length") from None
        if size < 0 or size > MAX_BODY:
            raise ClientError("response body too large")
        return await reader.readexactly(size), reusable
    body = await reader.read(MAX_BODY + 1)
    while body and len(body) <= MAX_BODY:
        more = await reader.read(MAX_BODY + 1 - len(body))
        if not more:
            break
        body += more
    if len(body) > MAX_BODY:
        raise ClientError("response body too large")
    return body, False


_Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter, float]


class HttpClient:
    """POSTs to one endpoint, reusing idle connections."""

    def __init__(self, endpoint: Endpoint, keepalive: float, max_idle: int = 16) -> None:
        self.endpoint = endpoint
        self.keepalive = keepalive
        self.max_idle = max_idle
        self.idle: list[_Connection] = []
        self._ssl: ssl.SSLContext | None = (
            ssl.create_default_context() if endpoint.scheme == "https" else None
        )

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bool]:
        now = time.monotonic()
        while self.idle:
            reader, writer, since = self.idle.pop()
            if now - since < self.keepalive and not writer.is_closing() and not reader.at_eof():
                return reader, writer, True
            writer.close()
        reader, writer = await asyncio.open_connection(
            self.endpoint.host,
            self.endpoint.port,
            ssl=self._ssl,
            server_hostname=self.endpoint.host if self._ssl else None,
            limit=MAX_HEAD,
        )
        return reader, writer, False

    async def post(self, headers: list[tuple[str, str]], body: bytes) -> tuple[int, bytes]:
        """Status and body of a POST; a reused connection that fails is retried once fresh."""
        lines = [f"POST {self.endpoint.target} HTTP/1.1", f"Host: {self.endpoint.host_header}"]
        lines += [f"{name}: {value}" for name, value in headers]
        lines.append(f"Content-Length: {len(body)}")
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
        for _attempt in range(2):
            reader, writer, reused = await self._connect()
            try:
                writer.write(request)
                await writer.drain()
                head = await reader.readuntil(b"\r\n\r\n")
                status, response_headers = parse_head(head[:-4])
                data, reusable = await read_body(reader, response_headers)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
                writer.close()
                if reused:
                    continue
                raise ClientError(f"introspection request failed: {exc!r}") from None
            except BaseException:
                writer.close()
                raise
            if reusable and len(self.idle) < self.max_idle:
                self.idle.append((reader, writer, time.monotonic()))
            else:
                writer.close()
            return status, data
        raise ClientError("introspection request failed")

    def close(self) -> None:
        for _reader, writer, _since in self.idle:
            writer.close()
        self.idle.clear()
