"""What every Admin API handler shares: the store, the entity operations, node facts, the
read-only reason, and the JSON response and error plumbing.

Handlers are wrapped by :func:`endpoint`, which turns an :class:`AdminError` into Kong's error
body and any unexpected exception into a logged 500 with a generic message (never a traceback
on the wire).
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, cast

from starlette.requests import Request
from starlette.responses import Response

from meshgate.controlplane.admin_api.crud import EntityOps
from meshgate.controlplane.admin_api.errors import DATABASE_ERROR, AdminError, dao_error, read_only
from meshgate.controlplane.admin_api.info import ConfigHasher, NodeInfo
from meshgate.store import Store, StoreError
from meshgate.store.errors import InvalidQuery

_log = logging.getLogger("meshgate.admin_api")

OnChange = Callable[[int], Awaitable[None] | None]
"""Called with the store revision after every committed write made through the Admin API."""

DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024


class JSONResponse(Response):
    """Compact UTF-8 JSON; NaN/Infinity can never be stored, so never rendered."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json.dumps(
            content, ensure_ascii=False, allow_nan=False, separators=(",", ":")
        ).encode()


@dataclass
class AdminContext:
    store: Store
    node: NodeInfo
    read_only_reason: str | None
    admin_token: str | None
    on_change: OnChange | None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    counters: dict[str, int] = field(default_factory=lambda: {"total_requests": 0})
    # (upstream id, target id or address) -> "healthy" | "unhealthy", set through the API
    target_health: dict[tuple[str, str], str] = field(default_factory=dict)
    openapi: dict[str, Any] | None = None  # built on first request, from the route table
    ops: EntityOps = field(init=False)
    hasher: ConfigHasher = field(init=False)

    def __post_init__(self) -> None:
        self.ops = EntityOps(self.store, self.changed)
        self.hasher = ConfigHasher(self.store)

    async def changed(self) -> None:
        """After a committed write: tell ``on_change`` the revision.  The write stands whatever
        the hook does, so a failing hook is logged, not reported to the client."""
        if self.on_change is None:
            return
        try:
            revision = await self.store.revision()
            result = self.on_change(revision)
            if inspect.isawaitable(result):
                await result
        except Exception:
            _log.exception("the Admin API on_change hook failed")

    def check_writable(self) -> None:
        if self.read_only_reason is not None:
            raise read_only(self.read_only_reason)


def context(request: Request) -> AdminContext:
    return cast(AdminContext, request.app.state.admin)


Handler = Callable[[Request], Awaitable[Response]]


def endpoint(handler: Handler) -> Handler:
    """Wrap a handler: Kong error bodies for ``AdminError``, a 500 body for the unexpected."""

    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except AdminError as exc:
            return JSONResponse(exc.body, status_code=exc.status, headers=exc.headers)
        except InvalidQuery as exc:
            return JSONResponse({"message": str(exc)}, status_code=400)
        except StoreError as exc:
            _log.exception("store error in %s %s", request.method, request.url.path)
            error = dao_error(500, DATABASE_ERROR, f"database error: {type(exc).__name__}")
            return JSONResponse(error.body, status_code=500)
        except Exception:
            _log.exception("unexpected error in %s %s", request.method, request.url.path)
            return JSONResponse({"message": "An unexpected error occurred"}, status_code=500)

    wrapped.__name__ = handler.__name__
    wrapped.__doc__ = handler.__doc__
    return wrapped


def no_content() -> Response:
    return Response(status_code=204)
