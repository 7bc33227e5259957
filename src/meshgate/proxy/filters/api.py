"""What a plugin is written against: its handler base class, its config base, the request context.

A plugin is a package ``meshgate.plugins.<name>`` (or any installed package exposing a
``meshgate.plugins`` entry point) with ``schema.py`` defining ``Config`` (a ``PluginConfig``) and
``handler.py`` defining ``Handler`` (a ``PluginHandler``).  A handler is built once per snapshot
per plugin instance, with its validated config; per request only its phase methods run.

Phases, in order (Kong's names in brackets):
  ``rewrite``  before routing decisions that plugins may change [rewrite]
  ``access``   after the route/service are known: auth, limits, transformations [access]
  ``response`` the upstream's response head, before it is sent [header_filter]
  ``body``     each response body chunk [body_filter]
  ``log``      after the response is done, off the request's critical path [log]
``rewrite``/``access`` may return an awaitable when they must wait (Redis, an HTTP call); a
plugin that never waits returns ``None`` and costs no task.  ``ctx.exit(...)`` ends the request
with a response of the plugin's choosing.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn, Protocol

from meshgate.proxy.filters.headers import HeaderBlock as HeaderBlock

if TYPE_CHECKING:
    from meshgate.proxy.filters.config_base import PluginConfig as PluginConfig
    from meshgate.snapshot import Consumer, PluginInstance, Route, Service, Snapshot


class Phase(enum.IntEnum):
    CERTIFICATE = 0
    REWRITE = 1
    ACCESS = 2
    RESPONSE = 3
    BODY = 4
    LOG = 5


class PhaseError(RuntimeError):
    """A context method was called in a phase where it has no meaning (a plugin bug)."""


class Exit(Exception):
    """Raised by ``ctx.exit``: answer the client with this instead of proxying."""

    def __init__(
        self, status: int, body: bytes | None, headers: Sequence[tuple[str, str]] = ()
    ) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers


def __getattr__(name: str) -> Any:
    if name == "PluginConfig":  # pydantic only once a plugin asks for it (``config_base``)
        from meshgate.proxy.filters.config_base import PluginConfig

        return PluginConfig
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class CompileEnv(Protocol):
    """What a handler may look at while it is built (once per snapshot)."""

    @property
    def snapshot(self) -> Snapshot: ...

    def consumers_by_id(self) -> Mapping[str, Consumer]: ...

    def credentials(self, kind: str) -> Sequence[tuple[Consumer, Mapping[str, Any]]]:
        """Every credential of ``kind`` (e.g. ``keyauth_credentials``) with its consumer."""
        ...

    def node_resource(self, key: str, factory: Any) -> Any:
        """A node-wide object (a Redis client, a metrics registry) shared across snapshots."""
        ...


class StreamWriter(Protocol):
    """The body of a response a plugin streams (``ctx.stream``)."""

    closed: bool  # True once the client went away, or the stream was closed

    async def write(self, data: bytes) -> None:
        """Send ``data`` (chunk-framed by the engine); waits while the client's write buffer
        is full; ``ConnectionError`` when the client is gone."""
        ...

    async def wait_closed(self) -> None:
        """Resolves when the client disconnects (or ``close`` ran)."""
        ...

    async def close(self) -> None:
        """The last chunk: the request is done and its log phase runs."""
        ...


class RawConnection(Protocol):
    """The client connection after a plugin answered 101 (``ctx.upgrade``): bytes both ways."""

    closed: bool

    async def read(self) -> bytes:
        """What the client sent since the last read; ``b""`` once closed.  The engine stops
        reading from the socket while too much is waiting here."""
        ...

    async def write(self, data: bytes) -> None: ...
    async def close(self) -> None: ...


class RequestContext(Protocol):
    """The request as a plugin sees it (Kong PDK's kong.request/response/client/ctx).

    Header names are case-insensitive.  Setters refuse calls from the wrong phase with
    ``PhaseError``.
    """

    phase: Phase
    shared: dict[str, Any]  # kong.ctx.shared: visible to every plugin of this request

    # --- the request (every phase reads; rewrite/access write)
    @property
    def method(self) -> str: ...
    @property
    def scheme(self) -> str: ...
    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def path(self) -> str: ...
    @property
    def raw_path(self) -> str:
        """The path as the client sent it (not normalized, percent-escapes kept)."""
        ...

    @property
    def http_version(self) -> str:
        """``"1.1"`` or ``"1.0"``."""
        ...

    @property
    def raw_query(self) -> str: ...
    def query(self) -> Mapping[str, Sequence[str]]: ...
    def header(self, name: str) -> str | None: ...
    def headers(self) -> Mapping[str, Sequence[str]]: ...
    @property
    def client_ip(self) -> str: ...
    @property
    def route(self) -> Route | None: ...
    @property
    def service(self) -> Service | None: ...
    @property
    def uri_captures(self) -> Mapping[str, str]: ...

    def set_header(self, name: str, value: str) -> None: ...
    def add_header(self, name: str, value: str) -> None: ...
    def clear_header(self, name: str) -> None: ...
    def set_path(self, path: str) -> None: ...
    def set_raw_query(self, query: str) -> None: ...
    def set_method(self, method: str) -> None: ...
    async def body(self, max_bytes: int = 8 * 1024 * 1024) -> bytes:
        """The whole request body (access phase; buffered once, then forwarded as read)."""
        ...

    def raw_body(self, max_bytes: int = 8 * 1024 * 1024) -> bytes:
        """The same without awaiting (the body is buffered before rewrite when a handler of
        the route sets ``needs_body``); a sync plugin stays task-free."""
        ...

    def set_body(self, body: bytes) -> None: ...

    # --- identity (access)
    @property
    def consumer(self) -> Consumer | None: ...
    @property
    def credential(self) -> Mapping[str, Any] | None: ...
    def authenticate(self, consumer: Consumer | None, credential: Mapping[str, Any] | None) -> None:
        """Record who this is; sets Kong's X-Consumer-* / X-Credential-Identifier upstream headers."""
        ...

    # --- ending the request early (rewrite/access/response)
    def exit(
        self,
        status: int,
        body: bytes | str | Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> NoReturn: ...

    # --- answering with a stream or taking the connection over (from inside the awaitable
    #     ``access`` returned; the chain stops there and nothing is proxied)
    def stream(self, status: int, headers: Mapping[str, str] | None = None) -> StreamWriter:
        """Send the response head now (response-phase plugins run on it; body filters do
        not) and return the writer of a body of unknown length.  When the awaitable ends the
        stream is ended if still open; if it raises, the connection is cut."""
        ...

    def upgrade(self, headers: Mapping[str, str] | None = None) -> RawConnection:
        """Answer ``101 Switching Protocols`` with ``headers`` (the plugin computes Upgrade,
        Connection, Sec-WebSocket-Accept) to a WebSocket upgrade request and hand over the
        connection.  When the awaitable ends the connection is closed."""
        ...

    # --- the response (response phase writes; log reads)
    @property
    def status(self) -> int: ...
    def response_header(self, name: str) -> str | None: ...
    def set_response_header(self, name: str, value: str) -> None: ...
    def add_response_header(self, name: str, value: str) -> None: ...
    def clear_response_header(self, name: str) -> None: ...
    def set_response_headers(self, block: HeaderBlock, values: Sequence[str | None]) -> None:
        """``set_response_header`` for each name of ``block`` (built once per handler) with
        its value, in order (a None value: ``clear_response_header``) — the same result,
        recorded and applied as one change."""
        ...

    def response_headers(self) -> Mapping[str, Sequence[str]]: ...

    # --- the log phase
    def serialize(self) -> dict[str, Any]:
        """Kong's basic log serializer shape: request, response, route, service, latencies..."""
        ...

    def set_serialize_value(self, key: str, value: Any) -> None:
        """Add ``key`` (dotted: nested) to what ``serialize`` returns (kong.log.set_serialize_value)."""
        ...


class PluginHandler:
    """Base of every plugin's ``Handler``; override only the phases the plugin uses."""

    PRIORITY: ClassVar[int] = 0
    VERSION: ClassVar[str] = "0.1.0"
    name: ClassVar[str] = ""
    # True (per class, or per instance in ``__init__`` from the config): the engine reads the
    # whole request body before rewrite/access of routes running this handler, so
    # ``ctx.raw_body()``/``await ctx.body()`` and ``ctx.set_body()`` work; bounded by
    # ``body_limit`` bytes (beyond: 413).
    needs_body: bool = False
    body_limit: int = 8 * 1024 * 1024

    def __init__(self, config: PluginConfig, instance: PluginInstance, env: CompileEnv) -> None:
        self.config = config
        self.instance = instance

    def rewrite(self, ctx: RequestContext) -> Awaitable[None] | None:
        return None

    def access(self, ctx: RequestContext) -> Awaitable[None] | None:
        return None

    def response(self, ctx: RequestContext) -> None:
        return None

    def body(self, ctx: RequestContext, chunk: bytes, eof: bool) -> bytes:
        return chunk

    def log(self, ctx: RequestContext) -> None:
        return None

    async def start(self) -> None:
        """Acquire background resources (connections, flush tasks); awaited before going live."""

    async def stop(self) -> None:
        """Release them; called when a snapshot without this instance took over."""
