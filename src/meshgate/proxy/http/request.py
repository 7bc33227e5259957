"""``ProxyRequest``: one client request as the engine parsed it; also the balancer's ``PickRequest``.

The parser callbacks fill it; everything a balancer or router may ask for (a header by
name, a cookie, the normalized path) is derived lazily, only when asked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from meshgate.proxy.http.heads import RequestFacts

if TYPE_CHECKING:
    from meshgate.proxy.http.exchange import Exchange


class ProxyRequest(RequestFacts):
    """A request: head facts, body buffering before an upstream is attached, PickRequest API."""

    __slots__ = (
        "_cookies",
        "_header_map",
        "_path",
        "body_buffer",
        "body_buffered",
        "body_received",
        "client_ip",
        "consumer_id",
        "error",
        "exchange",
        "head_size",
        "headers",
        "headers_done",
        "http10",
        "keep_alive",
        "message_complete",
        "method",
        "raw_path",
        "raw_query",
        "responded",
        "response_cookies",
        "started_at",
        "uri_captures",
        "url",
    )

    def __init__(self, client_ip: str, started_at: float) -> None:
        super().__init__()
        self.client_ip = client_ip
        self.started_at = started_at
        self.url = b""
        self.method = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_size = 0
        self.headers_done = False
        self.message_complete = False
        self.responded = False  # the response to it is fully written (or it was aborted)
        self.http10 = False
        self.keep_alive = True
        self.raw_path = b""
        self.raw_query: bytes | None = None  # None: the target had no "?"
        self.body_received = 0
        self.body_buffer: list[bytes] = []  # body pieces (already framed) awaiting an upstream
        self.body_buffered = 0
        self.exchange: Exchange | None = None
        self.error: tuple[int, str, str] | None = None  # (status, reason, message) to answer
        self.consumer_id: str | None = None
        self.uri_captures: dict[str, str] = {}
        self.response_cookies: list[bytes] | None = None
        self._header_map: dict[str, str] | None = None
        self._cookies: dict[str, str] | None = None
        self._path: str | None = None

    @property
    def has_body(self) -> bool:
        return self.chunked or self.content_length > 0

    # ------------------------------------------------------------------ PickRequest

    @property
    def path(self) -> str:
        """The request path, normalized as the router sees it, without the query."""
        if self._path is None:
            from meshgate.proxy.router_normalize import normalize_path

            self._path = normalize_path(self.raw_path.decode("utf-8", "surrogateescape"))
        return self._path

    @property
    def query(self) -> str:
        return "" if self.raw_query is None else self.raw_query.decode("latin-1")

    def header_map(self) -> dict[str, str]:
        """Lower-case name -> value (repeated headers joined with ", "); built once."""
        mapping = self._header_map
        if mapping is None:
            mapping = {}
            for name, value in self.headers:
                key = name.decode("latin-1").lower()
                text = value.decode("latin-1")
                previous = mapping.get(key)
                mapping[key] = text if previous is None else previous + ", " + text
            self._header_map = mapping
        return mapping

    def header(self, name: str) -> str | None:
        return self.header_map().get(name)

    def cookie(self, name: str) -> str | None:
        cookies = self._cookies
        if cookies is None:
            cookies = {}
            raw = self.header_map().get("cookie")
            if raw:
                for piece in raw.replace(",", ";").split(";"):
                    key, eq, value = piece.strip().partition("=")
                    if eq and key not in cookies:
                        cookies[key] = value.strip().strip('"')
            self._cookies = cookies
        return cookies.get(name)

    def set_response_cookie(self, name: str, value: str, path: str) -> None:
        if self.response_cookies is None:
            self.response_cookies = []
        line = f"Set-Cookie: {name}={value}; Path={path}\r\n".encode("latin-1", "replace")
        self.response_cookies.append(line)
