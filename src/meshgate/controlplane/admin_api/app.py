"""The Admin API application: routes, the guard middleware, and serving it with uvicorn.

``create_admin_app(store, node_info=..., ...)`` returns a Starlette (ASGI) app;
``await serve_admin(app, host, port)`` runs it inside the current event loop (uvloop is fine)
and returns an :class:`AdminServer` whose ``stop()`` shuts it down.

The guard middleware, in front of every route: counts requests, requires the admin token when
one is set (``Kong-Admin-Token: <token>`` or ``Authorization: Bearer <token>``, else 401),
refuses bodies over ``max_body_bytes`` with 413 (by ``Content-Length`` up front, or while the
body streams in).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from meshgate.controlplane.admin_api.config_api import config_routes
from meshgate.controlplane.admin_api.context import (
    DEFAULT_MAX_BODY_BYTES,
    AdminContext,
    JSONResponse,
    OnChange,
)
from meshgate.controlplane.admin_api.errors import message_error
from meshgate.controlplane.admin_api.handlers import entity_routes
from meshgate.controlplane.admin_api.info import NodeInfo
from meshgate.controlplane.admin_api.meta import meta_routes
from meshgate.controlplane.admin_api.openapi import openapi_routes
from meshgate.controlplane.admin_api.tls import AdminTLS
from meshgate.store import Store
from meshgate.tasks import spawn


def admin_routes() -> list[BaseRoute]:
    return [*meta_routes(), *config_routes(), *openapi_routes(), *entity_routes()]


def create_admin_app(
    store: Store,
    *,
    node_info: NodeInfo,
    read_only_reason: str | None = None,
    admin_token: str | None = None,
    on_change: OnChange | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> Starlette:
    """A Kong-compatible Admin API over ``store``.

    ``read_only_reason``: writes answer 405 with this reason (a node running from a file).
    ``on_change(revision)``: awaited after each committed write, before the response is sent.
    """
    app = Starlette(
        routes=admin_routes(),
        exception_handlers={HTTPException: _http_error},
    )
    app.state.admin = AdminContext(
        store=store,
        node=node_info,
        read_only_reason=read_only_reason,
        admin_token=admin_token,
        on_change=on_change,
        max_body_bytes=max_body_bytes,
    )
    app.add_middleware(GuardMiddleware, context=app.state.admin)
    return app


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    messages = {404: "Not found", 405: "Method not allowed"}
    return JSONResponse({"message": messages.get(status, str(exc))}, status_code=status)


class GuardMiddleware:
    def __init__(self, app: ASGIApp, context: AdminContext) -> None:
        self.app = app
        self.context = context

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ctx = self.context
        ctx.counters["total_requests"] += 1
        headers = {key.decode("latin-1").lower(): value for key, value in scope["headers"]}
        if ctx.admin_token is not None and not _token_ok(headers, ctx.admin_token):
            await _send_error(
                scope, receive, send, 401, "Unauthorized: a valid admin token is required"
            )
            return
        raw_path = scope.get("raw_path") or scope["path"].encode()
        if b"\x00" in raw_path or b"%00" in raw_path + scope.get("query_string", b""):
            await _send_error(scope, receive, send, 400, "NUL characters are not allowed")
            return
        length = headers.get("content-length", b"")
        if length.isdigit() and int(length) > ctx.max_body_bytes:
            await _send_error(scope, receive, send, 413, "Payload too large")
            return
        limit = ctx.max_body_bytes
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise message_error(413, "Payload too large")
            return message

        await self.app(scope, limited_receive, send)


def _token_ok(headers: dict[str, bytes], token: str) -> bool:
    expected = token.encode()
    given = headers.get("kong-admin-token")
    if given is not None and hmac.compare_digest(given, expected):
        return True
    authorization = headers.get("authorization", b"")
    scheme, _, credential = authorization.partition(b" ")
    return scheme.lower() == b"bearer" and hmac.compare_digest(credential.strip(), expected)


async def _send_error(
    scope: Scope, receive: Receive, send: Send, status: int, message: str
) -> None:
    await JSONResponse({"message": message}, status_code=status)(scope, receive, send)


@dataclass
class AdminServer:
    """A running Admin API server."""

    host: str
    port: int
    _server: Any
    _task: asyncio.Task[None]
    scheme: str = "http"

    async def stop(self) -> None:
        """Stop accepting, finish open requests, and return when the server is down."""
        self._server.should_exit = True
        await asyncio.wait({self._task})


async def serve_admin(
    app: ASGIApp, host: str = "127.0.0.1", port: int = 8001, *, tls: AdminTLS | None = None
) -> AdminServer:
    """Serve ``app`` with uvicorn in the running loop; returns once it listens.

    ``port=0`` picks a free port (see ``AdminServer.port``).  Raises ``OSError`` when the
    address cannot be bound.  Signal handling stays with the caller (uvicorn's is disabled).
    ``tls``: serve HTTPS (and require client certificates when it names a client CA).
    """
    import uvicorn

    class _Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(512)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="off",
        log_level="warning",
        access_log=False,
        **(tls.uvicorn_options() if tls is not None else {}),
    )
    server = _Server(config)
    task = spawn(server.serve(sockets=[sock]), name=f"admin-api-{host}:{port}")
    while not server.started:
        if task.done():
            task.result()
            raise OSError(f"the Admin API could not start on {host}:{port}")
        await asyncio.sleep(0.005)
    port = int(sock.getsockname()[1])
    return AdminServer(host, port, server, task, "https" if tls is not None else "http")
