"""``ProxyRequest``: one client request as the engine parsed it; also the balancer's ``PickRequest``.

The parser callbacks fill it; everything a balancer or router may ask for (a header by
name, a cookie, the normalized path) is derived lazily, only when asked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import httptools

from meshgate.proxy.http.heads import HeadError, RequestFacts

if TYPE_CHECKING:
    from meshgate.proxy.filters.flow import ProxyContext
    from meshgate.proxy.http.exchange import Exchange


# The captures of a request no route matched (yet): shared, as a route's are (the router
# remembers its matches), so never written to.
NO_CAPTURES: dict[str, str] = {}


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
        "ctx",
        "error",
        "exchange",
        "has_body",
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
        # RequestFacts' fields, set here rather than through super().__init__ (hot path).
        self.host: bytes | None = None
        self.content_length = -1
        self.chunked = False
        self.upgrade: bytes | None = None
        self.expect_continue = False
        self.fwd_for: bytes | None = None
        self.fwd_proto: bytes | None = None
        self.fwd_host: bytes | None = None
        self.fwd_port: bytes | None = None
        self.fwd_prefix: bytes | None = None
        self.real_ip: bytes | None = None
        self.kept: list[bytes] = []
        self.client_ip = client_ip
        self.started_at = started_at
        self.url = b""
        self.method = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_size = 0
        self.headers_done = False
        self.has_body = False  # chunked or Content-Length > 0; set when the head is complete
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
        self.ctx: ProxyContext | None = None  # the plugin context, on routes with plugins
        self.uri_captures: dict[str, str] = NO_CAPTURES  # the route's (shared, read-only)
        self.response_cookies: list[bytes] | None = None
        self._header_map: dict[str, str] | None = None
        self._cookies: dict[str, str] | None = None
        self._path: str | None = None

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


def parse_target(req: ProxyRequest) -> None:
    """Split the request target into path and query (origin or absolute form)."""
    url = req.url
    if url[:1] == b"/":
        path, sep, query = url.partition(b"?")
        req.raw_path = path
        req.raw_query = query if sep else None
        return
    lowered = url[:8].lower()
    if lowered.startswith((b"http://", b"https://")):
        try:
            parsed = httptools.parse_url(url)
        except httptools.HttpParserInvalidURLError:
            raise HeadError(400, "bad-request", "invalid request target") from None
        if not parsed.host:
            raise HeadError(400, "bad-request", "invalid request target")
        port = cast(Any, parsed).port  # httptools types it int; it is None when absent
        req.host = parsed.host + (b":%d" % port if port else b"")
        req.raw_path = parsed.path or b"/"
        req.raw_query = parsed.query
        return
    if req.method == b"CONNECT":
        raise HeadError(405, "method-not-allowed", "CONNECT is not supported")
    if url == b"*" and req.method == b"OPTIONS":
        req.raw_path = b"*"
        return
    raise HeadError(400, "bad-request", "invalid request target")


DISCARD_MAX = 1 << 20
"""Body bytes still due that an answer given before them reads and drops (as nginx discards a
body) so that the connection serves the next request; a larger or chunked rest closes it."""


def unread_body_closes(req: ProxyRequest) -> bool:
    """Whether answering ``req`` now, before its body is all in, must close the connection."""
    return (
        req.has_body
        and not req.message_complete
        and (req.chunked or req.content_length - req.body_received > DISCARD_MAX)
    )
