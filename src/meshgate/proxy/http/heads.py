"""Sans-io header work: classify request/response headers, drop hop-by-hop ones, build heads.

Headers stay bytes.  Scanning a head is one pass that both validates what matters for
framing and smuggling (Host, Content-Length, Transfer-Encoding, Connection, Upgrade,
Expect) and collects the headers that are forwarded as ready-to-join byte pieces.
"""

from __future__ import annotations

from meshgate import __version__

CRLF = b"\r\n"
SEP = b": "
join_bytes = b"".join  # ``join_bytes((name, SEP, value, CRLF))``: one copy, not three
VIA_VALUE = b"1.1 meshgate/" + __version__.encode()
VIA_LINE = b"Via: " + VIA_VALUE + CRLF
SERVER_LINE = b"Server: meshgate/" + __version__.encode() + CRLF

# Names (lower-case) a request scan treats specially instead of forwarding as they are.
_REQUEST_SPECIAL = frozenset(
    {
        b"host",
        b"content-length",
        b"transfer-encoding",
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"upgrade",
        b"proxy-authorization",
        b"expect",
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"x-forwarded-port",
        b"x-forwarded-path",
        b"x-forwarded-prefix",
        b"x-real-ip",
    }
)
_RESPONSE_SPECIAL = frozenset(
    {
        b"content-length",
        b"transfer-encoding",
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"upgrade",
        b"proxy-authenticate",
    }
)
# Connection tokens that name no header worth removing.
_PLAIN_TOKENS = frozenset({b"close", b"keep-alive", b"upgrade"})


_SIMPLE_TOKENS = {
    v: [v.lower()] for v in (b"keep-alive", b"Keep-Alive", b"close", b"Close", b"upgrade",
                             b"Upgrade", b"chunked")
}  # fmt: skip


def connection_tokens(value: bytes) -> list[bytes]:
    """The lower-case tokens of a comma-separated header value (Connection, TE...)."""
    simple = _SIMPLE_TOKENS.get(value)
    if simple is not None:
        return simple  # shared: callers must not modify it
    return [t.strip().lower() for t in value.split(b",") if t.strip()]


class RequestFacts:
    """What a request head says, as far as the proxy cares; filled by ``scan_request_headers``."""

    __slots__ = (
        "chunked",
        "content_length",
        "expect_continue",
        "fwd_for",
        "fwd_host",
        "fwd_port",
        "fwd_prefix",
        "fwd_proto",
        "host",
        "kept",
        "real_ip",
        "upgrade",
    )

    def __init__(self) -> None:
        self.host: bytes | None = None
        self.content_length = -1  # -1: no Content-Length header
        self.chunked = False
        self.upgrade: bytes | None = None  # the Upgrade value when Connection names upgrade
        self.expect_continue = False
        self.fwd_for: bytes | None = None
        self.fwd_proto: bytes | None = None
        self.fwd_host: bytes | None = None
        self.fwd_port: bytes | None = None
        self.fwd_prefix: bytes | None = None
        self.real_ip: bytes | None = None
        self.kept: list[bytes] = []  # forwarded header lines, each "Name: value\r\n"


class HeadError(Exception):
    """A request head the proxy refuses: ``status`` and a ``meshgate-error`` reason."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message


_request_names: dict[bytes, bytes] = {}  # name as sent -> lower-case name if special, else b""


def _special_name(name: bytes, specials: frozenset[bytes], memo: dict[bytes, bytes]) -> bytes:
    lname = name.lower()
    special = lname if lname in specials else b""
    if len(memo) < 4096:  # header names repeat: spellings are memoized, bounded
        memo[name] = special
    return special


def scan_request_headers(headers: list[tuple[bytes, bytes]], facts: RequestFacts) -> bool:
    """Classify ``headers`` into ``facts``; raises ``HeadError`` for heads we refuse.

    Returns whether the head has no Connection (nor Proxy-Connection) header: then the
    parser's keep-alive verdict depends on the HTTP version alone (see ``server``)."""
    kept = facts.kept
    upgrade_value: bytes | None = None
    extra_tokens: list[bytes] | None = None
    connection_upgrade = False
    no_connection = True
    memo = _request_names
    join = join_bytes
    for name, value in headers:
        lname = memo.get(name)
        if lname is None:
            lname = _special_name(name, _REQUEST_SPECIAL, memo)
        if not lname:
            kept.append(join((name, SEP, value, CRLF)))
            continue
        if lname == b"host":
            if facts.host is not None:
                raise HeadError(400, "bad-request", "more than one Host header")
            facts.host = value.strip()
        elif lname == b"content-length":
            if facts.content_length >= 0:
                raise HeadError(400, "bad-request", "more than one Content-Length header")
            if not value.isdigit():
                raise HeadError(400, "bad-request", "invalid Content-Length")
            facts.content_length = int(value)
            kept.append(join((name, SEP, value, CRLF)))
        elif lname == b"transfer-encoding":
            codings = connection_tokens(value)
            if facts.chunked or not codings or codings[-1] != b"chunked":
                raise HeadError(400, "bad-request", "chunked must be the final transfer coding")
            if len(codings) > 1:
                raise HeadError(501, "unsupported-transfer-encoding", "unsupported transfer coding")
            facts.chunked = True
        elif lname == b"connection":
            no_connection = False
            for token in connection_tokens(value):
                if token == b"upgrade":
                    connection_upgrade = True
                elif token not in _PLAIN_TOKENS:
                    extra_tokens = extra_tokens or []
                    extra_tokens.append(token)
        elif lname == b"upgrade":
            upgrade_value = value
        elif lname == b"expect":
            if value.strip().lower() != b"100-continue":
                raise HeadError(417, "expectation-failed", "unsupported Expect")
            facts.expect_continue = True
        elif lname == b"x-forwarded-for":
            facts.fwd_for = value if facts.fwd_for is None else facts.fwd_for + b", " + value
        elif lname == b"x-forwarded-proto":
            facts.fwd_proto = value
        elif lname == b"x-forwarded-host":
            facts.fwd_host = value
        elif lname == b"x-forwarded-port":
            facts.fwd_port = value
        elif lname == b"x-forwarded-prefix":
            facts.fwd_prefix = value
        elif lname == b"x-real-ip":
            facts.real_ip = value
        elif lname == b"proxy-connection":
            no_connection = False  # dropped, but the parser reads it as a Connection header
        # keep-alive, te, trailer, proxy-authorization, x-forwarded-path: dropped
    if facts.chunked and facts.content_length >= 0:
        raise HeadError(400, "bad-request", "both Content-Length and Transfer-Encoding")
    if connection_upgrade and upgrade_value is not None:
        facts.upgrade = upgrade_value
    if extra_tokens:
        facts.kept = drop_named(kept, extra_tokens)
    return no_connection


def drop_named(lines: list[bytes], lower_names: list[bytes]) -> list[bytes]:
    """``lines`` without the header lines whose (case-insensitive) name is in ``lower_names``."""
    names = set(lower_names)
    return [line for line in lines if line.split(b":", 1)[0].lower() not in names]


def is_websocket(upgrade: bytes | None) -> bool:
    return upgrade is not None and upgrade.strip().lower() == b"websocket"


def build_request_head(
    method: bytes,
    target: bytes,
    host: bytes,
    kept: list[bytes],
    forwarded: bytes,
    *,
    chunked: bool,
    upgrade: bytes | None,
) -> bytes:
    """The upstream request head: request line, Host, kept headers, forwarding headers, Via."""
    parts = [method, b" ", target, b" HTTP/1.1\r\nHost: ", host, CRLF, *kept, forwarded]
    if chunked:
        parts.append(b"Transfer-Encoding: chunked\r\n")
    if upgrade is not None:
        parts.append(b"Connection: upgrade\r\nUpgrade: " + upgrade + CRLF)
    parts.append(VIA_LINE)
    parts.append(CRLF)
    return b"".join(parts)


def forwarded_headers(
    *,
    client_ip: bytes,
    incoming_for: bytes | None,
    proto: bytes,
    host: bytes,
    port: bytes,
    path: bytes,
    prefix: bytes | None,
    real_ip: bytes,
) -> bytes:
    """X-Forwarded-* and X-Real-IP lines (the caller decides which incoming values to trust)."""
    xff = client_ip if incoming_for is None else incoming_for + b", " + client_ip
    out = (
        b"X-Forwarded-For: " + xff + b"\r\nX-Forwarded-Proto: " + proto
        + b"\r\nX-Forwarded-Host: " + host + b"\r\nX-Forwarded-Port: " + port
        + b"\r\nX-Forwarded-Path: " + path + b"\r\nX-Real-IP: " + real_ip + CRLF
    )  # fmt: skip
    if prefix:
        out += b"X-Forwarded-Prefix: " + prefix + CRLF
    return out


def connection_forwarded(client_ip: bytes, proto: bytes, port: bytes) -> bytes:
    """The forwarding headers that only depend on the connection (untrusted peers)."""
    return (
        b"X-Forwarded-For: " + client_ip + b"\r\nX-Forwarded-Proto: " + proto
        + b"\r\nX-Forwarded-Port: " + port + b"\r\nX-Real-IP: " + client_ip + CRLF
    )  # fmt: skip


class ResponseFacts:
    """What an upstream response head says about framing and connection reuse."""

    __slots__ = ("chunked", "content_length", "extra_tokens", "kept", "upgrade")

    def __init__(self) -> None:
        self.content_length = -1
        self.chunked = False
        self.upgrade: bytes | None = None
        self.kept: list[bytes] = []
        self.extra_tokens: list[bytes] | None = None  # headers Connection names: dropped at the end


# Response header name as sent -> lower-case name if special, else b"" (filled on first sight).
RESPONSE_NAMES: dict[bytes, bytes] = {}


def add_response_header(facts: ResponseFacts, name: bytes, value: bytes) -> None:
    """Classify one response header into ``facts`` (callers may inline the common cases)."""
    lname = RESPONSE_NAMES.get(name)
    if lname is None:
        lname = _special_name(name, _RESPONSE_SPECIAL, RESPONSE_NAMES)
    if not lname:
        facts.kept.append(join_bytes((name, SEP, value, CRLF)))
    elif lname == b"content-length":
        facts.content_length = int(value) if value.isdigit() else -1
        facts.kept.append(join_bytes((name, SEP, value, CRLF)))
    elif lname == b"transfer-encoding":
        facts.chunked = value.strip().lower().endswith(b"chunked")
    elif lname == b"upgrade":
        facts.upgrade = value
    elif lname == b"connection" and value not in _SIMPLE_TOKENS:
        for token in connection_tokens(value):
            if token not in _PLAIN_TOKENS:
                if facts.extra_tokens is None:
                    facts.extra_tokens = []
                facts.extra_tokens.append(token)


def end_response_head(facts: ResponseFacts) -> None:
    """Drop the headers the response's Connection header named (call once, after the last)."""
    if facts.extra_tokens:
        facts.kept = drop_named(facts.kept, facts.extra_tokens)
        facts.extra_tokens = None


def scan_response_headers(headers: list[tuple[bytes, bytes]]) -> ResponseFacts:
    """Classify an upstream response head; hop-by-hop headers are left out of ``kept``."""
    facts = ResponseFacts()
    for name, value in headers:
        add_response_header(facts, name, value)
    end_response_head(facts)
    return facts


_status_lines: dict[tuple[int, bytes], bytes] = {}


def status_line(status: int, reason: bytes) -> bytes:
    """``HTTP/1.1 <status> <reason>\\r\\n``, memoized (few distinct pairs exist)."""
    key = (status, reason)
    line = _status_lines.get(key)
    if line is None:
        line = b"HTTP/1.1 %d %s\r\n" % (status, reason)
        if len(_status_lines) < 1024:
            _status_lines[key] = line
    return line
