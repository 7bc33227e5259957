"""``HttpContext``: the ``RequestContext`` plugins get, over the engine's ``ProxyRequest``.

Nothing is decoded until a plugin asks: the header table, the query view and the serializer
output are built on first use.  Setters record what should change; the engine applies the
record when it builds the upstream head (``upstream_*`` attributes and the header table's
changed names) and the response head (``response_table``).  Calls from a phase where they
have no meaning raise ``PhaseError``.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, NoReturn
from urllib.parse import parse_qs

from mypy_extensions import mypyc_attr

from meshgate.proxy.filters.api import Exit, Phase, PhaseError
from meshgate.proxy.filters.headers import (
    BlockValues,
    HeaderBlock,
    HeaderTable,
    Op,
    apply_ops,
    check_header,
)

if TYPE_CHECKING:
    from meshgate.proxy.filters.chain import Bound, Chain
    from meshgate.proxy.http.request import ProxyRequest
    from meshgate.snapshot import Consumer, Route, Service

_REQUEST_WRITE = frozenset({Phase.REWRITE, Phase.ACCESS})
_EXIT = frozenset({Phase.REWRITE, Phase.ACCESS, Phase.RESPONSE})
_RESPONSE_WRITE = frozenset({Phase.REWRITE, Phase.ACCESS, Phase.RESPONSE})
_RESPONSE_READ = frozenset({Phase.RESPONSE, Phase.BODY, Phase.LOG})
JSON_TYPE = "application/json; charset=utf-8"
DEFAULT_BODY_LIMIT: Final = 8 * 1024 * 1024


def _json(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


@functools.lru_cache(maxsize=256)
def _message_json(message: str) -> bytes:
    """``{"message": ...}`` as bytes: plugins answer with a few fixed messages."""
    return _json({"message": message})


# plugin tests subclass it (``filters.testing.FakeContext``), also when mypyc compiled this
# module (meshgate._native)
@mypyc_attr(allow_interpreted_subclasses=True)
class HttpContext:
    """Implements ``meshgate.proxy.filters.api.RequestContext`` for one request."""

    # Per-request state that most requests never touch lives in class-level defaults: a
    # context is built with a handful of assignments (this is on every plugin request).
    _headers: HeaderTable | None = None
    # request header changes made before anything needed the whole table (``_table`` replays
    # them; ``flow.request_head`` applies them to the head's lines without a table)
    request_ops: list[Op] | None = None
    # ``authenticate``'s identity headers while they are the only request header change
    # (then ``request_ops`` is None; anything else turns the block into ops first)
    request_block: BlockValues | None = None
    _query_view: dict[str, list[str]] | None = None
    _consumer: Consumer | None = None
    _credential: Mapping[str, Any] | None = None
    plugin = ""  # the plugin running now (for error reports)
    collected: list[Bound] | None = None  # consumer-dependent chains: who ran access
    upstream_method: str | None = None
    upstream_path: str | None = None
    upstream_query: str | None = None
    upstream_body: bytes | None = None  # the body to send (collected or replaced)
    upstream_target = b""  # path?query as sent upstream (for the log)
    body_collecting = False
    body_pieces: list[bytes] | None = None
    body_size = 0
    body_limit = DEFAULT_BODY_LIMIT
    status = 0
    response_table: HeaderTable | None = None
    response_lines: list[bytes] | None = None  # the head sent when no table was needed
    response_ops: list[Op] | None = None  # op, lname, name, value
    # ``set_response_headers`` while it is the only response header change (as request_block)
    response_block: BlockValues | None = None
    exited: Exit | None = None
    serialize_values: dict[str, Any] | None = None
    exchange: Any = None
    bytes_sent = 0
    t_end = 0.0
    started_wall = 0.0

    def __init__(
        self,
        req: ProxyRequest,
        *,
        scheme: str,
        port: int,
        route: Route | None,
        service: Service | None,
        chain: Chain | None = None,
    ) -> None:
        self.req = req
        self.chain = chain
        self.phase = Phase.ACCESS
        self.shared: dict[str, Any] = {}
        self._scheme = scheme
        self._port = port
        self._route = route
        self._service = service

    # ------------------------------------------------------------------ helpers

    def _check(self, allowed: frozenset[Phase], what: str) -> None:
        if self.phase not in allowed:
            names = "/".join(sorted(p.name.lower() for p in allowed))
            raise PhaseError(f"{what} is not allowed in the {self.phase.name.lower()} phase "
                             f"(only {names})")  # fmt: skip

    def _request_ops(self) -> list[Op]:
        """The recorded request header changes as ops (a recorded block becomes ops)."""
        ops = self.request_ops
        if ops is None:
            block = self.request_block
            if block is None:
                ops = self.request_ops = []
            else:
                self.request_block = None
                ops = self.request_ops = block[0].ops(block[1])
        return ops

    def _table(self) -> HeaderTable:
        table = self._headers
        if table is None:
            table = self._headers = HeaderTable.from_pairs(self.req.headers)
            if self.request_block is not None:
                self._request_ops()
            ops = self.request_ops
            if ops is not None:
                self.request_ops = None
                for op, _, name, value in ops:  # as if made on the table (``clear`` skips
                    table.change(op, name, value)  # a name neither in the head nor changed)
        return table

    def _request_op(self, op: str, name: str, value: str) -> None:
        """Change a request header: in the table when there is one, else recorded."""
        table = self._headers
        if table is not None:
            table.change(op, name, value)
            return
        lname = check_header(name, value if op != "clear" else None)
        ops = self.request_ops
        if ops is None:
            ops = self._request_ops()
        ops.append((op, lname, name, value))

    @property
    def header_changes(self) -> HeaderTable | None:
        """The request header table when a plugin changed it (the engine applies it)."""
        if self.request_ops is not None or self.request_block is not None:
            self._table()
        table = self._headers
        return table if table is not None and table.changed else None

    # ------------------------------------------------------------------ the request

    @property
    def method(self) -> str:
        return self.upstream_method or self.req.method.decode("latin-1")

    @property
    def scheme(self) -> str:
        return self._scheme

    @property
    def host(self) -> str:
        host = self.req.host or b""
        if host.startswith(b"["):
            return host[: host.find(b"]") + 1].decode("latin-1").lower()
        return host.partition(b":")[0].decode("latin-1").lower()

    @property
    def port(self) -> int:
        return self._port

    @property
    def path(self) -> str:
        return self.req.path

    @property
    def raw_path(self) -> str:
        return self.req.raw_path.decode("latin-1")

    @property
    def http_version(self) -> str:
        return "1.0" if self.req.http10 else "1.1"

    @property
    def raw_query(self) -> str:
        if self.upstream_query is not None:
            return self.upstream_query
        raw = self.req.raw_query
        return "" if raw is None else raw.decode("latin-1")

    def query(self) -> Mapping[str, Sequence[str]]:
        view = self._query_view
        if view is None:
            view = self._query_view = parse_qs(self.raw_query, keep_blank_values=True)
        return MappingProxyType(view)

    def header(self, name: str) -> str | None:
        if (
            self._headers is not None
            or self.request_ops is not None
            or self.request_block is not None
        ):
            return self._table().first(name.lower())
        wanted = name.lower().encode("latin-1", "replace")  # one look: no table to build
        for raw_name, raw_value in self.req.headers:
            if raw_name.lower() == wanted:
                return raw_value.rstrip().decode("latin-1")
        return None

    def headers(self) -> Mapping[str, Sequence[str]]:
        return RequestHeaders(self)

    @property
    def client_ip(self) -> str:
        return self.req.client_ip

    @property
    def route(self) -> Route | None:
        return self._route

    @property
    def service(self) -> Service | None:
        return self._service

    @property
    def uri_captures(self) -> Mapping[str, str]:
        return self.req.uri_captures

    def set_header(self, name: str, value: str) -> None:
        self._check(_REQUEST_WRITE, "set_header")
        self._request_op("set", name, value)

    def add_header(self, name: str, value: str) -> None:
        self._check(_REQUEST_WRITE, "add_header")
        self._request_op("add", name, value)

    def clear_header(self, name: str) -> None:
        self._check(_REQUEST_WRITE, "clear_header")
        self._request_op("clear", name, "")

    def set_path(self, path: str) -> None:
        """The path sent upstream (replaces the one the route and service would give)."""
        self._check(_REQUEST_WRITE, "set_path")
        if not path.startswith("/") or any(c in path for c in "\r\n\x00 ?#"):
            raise ValueError(f"invalid upstream path {path!r}")
        self.upstream_path = path

    def set_raw_query(self, query: str) -> None:
        self._check(_REQUEST_WRITE, "set_raw_query")
        if any(c in query for c in "\r\n\x00 #"):
            raise ValueError(f"invalid query {query!r}")
        self.upstream_query = query
        self._query_view = None

    def set_method(self, method: str) -> None:
        self._check(_REQUEST_WRITE, "set_method")
        if not check_method(method):
            raise ValueError(f"invalid method {method!r}")
        self.upstream_method = method.upper()

    async def body(self, max_bytes: int = DEFAULT_BODY_LIMIT) -> bytes:
        return self.raw_body(max_bytes)

    def raw_body(self, max_bytes: int = DEFAULT_BODY_LIMIT) -> bytes:
        """The whole request body, synchronously (the engine buffered it before rewrite
        because a handler of this route has ``needs_body``); over ``max_bytes`` → 413."""
        self._check(_REQUEST_WRITE, "body")
        body = self.upstream_body
        if body is None:
            if self.req.has_body:
                raise PhaseError(
                    "the request body was not buffered: set needs_body = True on the handler"
                )
            return b""
        if len(body) > max_bytes:
            self.exit(413, "Request size limit exceeded")
        return body

    def set_body(self, body: bytes) -> None:
        """Replace the request body sent upstream (Content-Length is set to match)."""
        self._check(_REQUEST_WRITE, "set_body")
        if self.upstream_body is None and self.req.has_body:
            raise PhaseError("set_body on a request whose body was not buffered (needs_body)")
        self.upstream_body = bytes(body)

    # ------------------------------------------------------------------ identity

    @property
    def consumer(self) -> Consumer | None:
        return self._consumer

    @property
    def credential(self) -> Mapping[str, Any] | None:
        return self._credential

    def authenticate(self, consumer: Consumer | None, credential: Mapping[str, Any] | None) -> None:
        """Kong's ``kong.client.authenticate`` plus the upstream headers its auth plugins set."""
        phase = self.phase
        if phase is not Phase.ACCESS and phase is not Phase.REWRITE:
            self._check(_REQUEST_WRITE, "authenticate")
        self._consumer = consumer
        self._credential = credential
        self.req.consumer_id = consumer.id if consumer is not None else None
        cred_id = credential.get("id") if credential is not None else None
        values = (
            None if consumer is None else consumer.id,
            None if consumer is None else consumer.custom_id,
            None if consumer is None else consumer.username,
            None if cred_id is None else str(cred_id),
            "true" if credential is None and consumer is not None else None,
        )
        table = self._headers
        if table is not None:
            for name, value in zip(IDENTITY_HEADERS.names, values, strict=True):
                if value is None:
                    table.clear(name)
                else:
                    table.set(name, value)
            return
        IDENTITY_HEADERS.check(values)  # a memo block: a consumer's values are checked once
        if self.request_ops is None and self.request_block is None:
            self.request_block = (IDENTITY_HEADERS, values)  # the usual case: one record
        else:
            self._request_ops().extend(IDENTITY_HEADERS.ops(values))

    # ------------------------------------------------------------------ ending early

    def exit(
        self,
        status: int,
        body: bytes | str | Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> NoReturn:
        """Answer with ``status``; a str body becomes ``{"message": body}`` (JSON), a mapping
        becomes JSON, bytes are sent as they are."""
        self._check(_EXIT, "exit")
        if not 100 <= status <= 599:
            raise ValueError(f"invalid status {status}")
        pairs: list[tuple[str, str]] = []
        if headers:
            for name, value in headers.items():
                if name.lower() != "content-length":
                    check_header(name, value)
                    pairs.append((name, value))
        data: bytes | None
        if body is None or isinstance(body, bytes | bytearray):
            data = None if body is None else bytes(body)
        else:
            data = _message_json(body) if isinstance(body, str) else _json(dict(body))
            if not any(n.lower() == "content-type" for n, _ in pairs):
                pairs.append(("Content-Type", JSON_TYPE))
        raise Exit(status, data, pairs)

    # ------------------------------------------------------------------ own answers

    def stream(self, status: int, headers: Mapping[str, str] | None = None) -> Any:
        raise NotImplementedError("stream() needs the engine (or FakeContext)")

    def upgrade(self, headers: Mapping[str, str] | None = None) -> Any:
        raise NotImplementedError("upgrade() needs the engine (or FakeContext)")

    # ------------------------------------------------------------------ the response

    def _response_table(self) -> HeaderTable:
        table = self.response_table
        if table is None:
            table = self.response_table = HeaderTable()
        return table

    def _response_op(self, op: str, name: str, value: str) -> None:
        phase = self.phase
        if phase is not Phase.RESPONSE:
            if phase not in _RESPONSE_WRITE:
                self._check(_RESPONSE_WRITE, "setting a response header")
            lname = check_header(name, value if op != "clear" else None)
            ops = self.response_ops
            if ops is None:
                ops = self._response_ops()
            ops.append((op, lname, name, value))
            return
        self._response_table().change(op, name, value)

    def _response_ops(self) -> list[Op]:
        """The recorded response header changes as ops (a recorded block becomes ops)."""
        ops = self.response_ops
        if ops is None:
            block = self.response_block
            if block is None:
                ops = self.response_ops = []
            else:
                self.response_block = None
                ops = self.response_ops = block[0].ops(block[1])
        return ops

    def apply_response_changes(self, lines: list[bytes]) -> list[bytes]:
        """Engine, when no response-phase plugin runs: ``lines`` with the response headers
        set before the response (and forget them)."""
        block = self.response_block
        if block is not None:
            self.response_block = None
            return block[0].apply(lines, block[1])
        ops = self.response_ops
        if ops:
            self.response_ops = None
            return apply_ops(lines, ops)
        return lines

    def start_response(self, status: int, lines: list[bytes]) -> None:
        """Engine: the response head arrived (or an exit is answered); replays headers set
        before it and enters the response phase."""
        self.status = status
        table = self.response_table = HeaderTable.from_lines(lines)
        self.phase = Phase.RESPONSE
        if self.response_block is not None:
            self._response_ops()
        if self.response_ops:
            table.replay(self.response_ops)
            self.response_ops = None

    def sent_response_table(self) -> HeaderTable | None:
        """The response headers: the table, or one built from the head the engine sent
        without building a table (no response-phase plugin on the route)."""
        table = self.response_table
        if table is None and self.response_lines is not None:
            table = self.response_table = HeaderTable.from_lines(self.response_lines)
        return table

    def response_header(self, name: str) -> str | None:
        table = self.sent_response_table()
        return table.first(name.lower()) if table is not None else None

    def response_headers(self) -> Mapping[str, Sequence[str]]:
        """Every response header (lower-case name -> values); empty before the response."""
        table = self.sent_response_table()
        return MappingProxyType(table.values if table is not None else {})

    def set_response_header(self, name: str, value: str) -> None:
        self._response_op("set", name, value)

    def add_response_header(self, name: str, value: str) -> None:
        self._response_op("add", name, value)

    def clear_response_header(self, name: str) -> None:
        self._response_op("clear", name, "")

    def set_response_headers(self, block: HeaderBlock, values: Sequence[str | None]) -> None:
        """``set_response_header`` (``clear_response_header`` for a None value) for each
        name of ``block`` in order, recorded as one change when it is the only one."""
        phase = self.phase
        if phase is not Phase.RESPONSE:
            if phase not in _RESPONSE_WRITE:
                self._check(_RESPONSE_WRITE, "setting a response header")
            values = block.check(values)
            if self.response_ops is None and self.response_block is None:
                self.response_block = (block, values)
            else:
                self._response_ops().extend(block.ops(values))
            return
        table = self._response_table()
        for name, value in zip(block.names, values, strict=True):
            if value is None:
                table.clear(name)
            else:
                table.set(name, value)

    # ------------------------------------------------------------------ the log phase

    def serialize(self) -> dict[str, Any]:
        """Kong's basic log serializer (log phase)."""
        if self.phase != Phase.LOG:
            raise PhaseError("serialize is only allowed in the log phase")
        from meshgate.proxy.filters.serialize import basic_serializer

        return basic_serializer(self)

    def set_serialize_value(self, key: str, value: Any) -> None:
        if self.serialize_values is None:
            self.serialize_values = {}
        self.serialize_values[key] = value

    def log_figures(
        self,
    ) -> tuple[float, float, float | None, int, int, bool, float]:
        """The log phase's figures (``meshgate.plugins._shared.facts.log_figures``):
        request/kong/proxy ms, ingress/egress bytes, from the service, started (monotonic)."""
        req = self.req
        started = req.started_at
        end = self.t_end or started
        total_ms = (end - started) * 1000.0
        if total_ms < 0.0:
            total_ms = 0.0
        kong_ms = total_ms
        proxy_ms: float | None = None
        from_service = False
        exchange = self.exchange
        if exchange is not None:
            from_service = bool(exchange.status) and self.exited is None
            t_sent: float = exchange.t_sent
            if t_sent:
                kong_ms = (t_sent - started) * 1000.0
                t_head: float = exchange.t_head
                if t_head:
                    proxy_ms = (t_head - t_sent) * 1000.0
        ingress = req.head_size + len(req.url) + req.body_received
        return total_ms, kong_ms, proxy_ms, ingress, self.bytes_sent, from_service, started

    def start_time(self) -> float:
        """When the request started (epoch seconds)."""
        if not self.started_wall:
            from meshgate.proxy.http.clock import monotonic

            self.started_wall = time.time() - (monotonic() - self.req.started_at)
        return self.started_wall


# the upstream headers ``authenticate`` sets or clears, in Kong's order (a consumer's values
# repeat: they are checked and their lines encoded once, memo)
IDENTITY_HEADERS = HeaderBlock(
    (
        "X-Consumer-ID",
        "X-Consumer-Custom-ID",
        "X-Consumer-Username",
        "X-Credential-Identifier",
        "X-Anonymous-Consumer",
    ),
    memo=True,
)


class RequestHeaders(Mapping[str, Sequence[str]]):
    """``ctx.headers()``: the request headers, lower-case name -> values, read-only and live
    (later changes show).  A lookup before any change scans the parsed pairs for that one
    name — the whole table is built only when iterated, or once a plugin changed a header."""

    __slots__ = ("_ctx",)

    def __init__(self, ctx: HttpContext) -> None:
        self._ctx = ctx

    def _raw(self, lname: str) -> list[str] | None:
        """The values of ``lname`` straight from the parsed head; None: use the table."""
        ctx = self._ctx
        if ctx._headers is not None or ctx.request_ops is not None or ctx.request_block is not None:
            return None
        try:
            wanted = lname.encode("latin-1")
        except UnicodeEncodeError:
            return []
        return [
            raw_value.rstrip().decode("latin-1")
            for raw_name, raw_value in ctx.req.headers
            if raw_name.lower() == wanted
        ]

    def get(self, key: str, default: Any = None) -> Any:
        found = self._raw(key)
        if found is None:
            return self._ctx._table().values.get(key, default)
        return found or default

    def __getitem__(self, key: str) -> Sequence[str]:
        found = self._raw(key)
        if found is None:
            return self._ctx._table().values[key]
        if not found:
            raise KeyError(key)
        return found

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self._ctx._table().values)

    def __len__(self) -> int:
        return len(self._ctx._table().values)

    def __repr__(self) -> str:
        return f"RequestHeaders({self._ctx._table().values!r})"


_METHOD_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-_")


def check_method(method: str) -> bool:
    return bool(method) and len(method) <= 32 and all(c in _METHOD_CHARS for c in method)
