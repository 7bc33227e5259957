"""The Mesh API (Kuma-style, Starlette): mesh resources, inspect, dataplane tokens.

Routes (JSON in and out):

* ``GET /`` — product, version, store revision;
* ``GET /meshes``; ``GET|PUT|DELETE /meshes/{mesh}`` — a new mesh also gets its default
  policies (an allow-all MeshTrafficPermission, timeouts, retries, circuit breaker);
  deleting a mesh deletes everything in it;
* ``GET /meshes/{mesh}/{collection}`` (``dataplanes``, ``meshtrafficpermissions``,
  ``meshhttproutes``, ``meshtimeouts``, ``meshretries``, ``meshhealthchecks``,
  ``meshcircuitbreakers``): ``{total, items, next, revision}``, paged with ``size``
  (1-1000, default 100) and the opaque ``offset`` that ``next`` carries.  With
  ``watch=true&revision=N`` the answer waits (up to ``timeout`` seconds, default 30, at most
  300) until that collection changes after revision ``N`` — a long-poll watch;
* ``GET|PUT|DELETE /meshes/{mesh}/{collection}/{name}`` — PUT answers 201 (created) or 200;
  invalid resources get 400 with every violation and its field path;
* ``GET /meshes/{mesh}/dataplanes/{name}/_config`` (effective snapshot), ``/_rules``
  (policy merge view), ``/_overview`` (resource + connection, ACK/NACK and certificate),
  and ``/meshes/{mesh}/dataplanes+insights`` (every dataplane with that status, paged);
* ``POST /tokens/dataplane`` ``{mesh, name?, tags?, validFor?}`` → the token as text.

With an admin token every request must carry it (``Authorization: Bearer <token>``);
without one, tokens are only issued to loopback clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from meshgate import __version__
from meshgate.controlplane.distribution import inspect
from meshgate.controlplane.distribution.engine import DistributionEngine
from meshgate.controlplane.distribution.storage import (
    KINDS,
    create_mesh,
    delete_mesh,
    delete_resource,
    entity_id,
    entity_type,
    put_resource,
    strip_id,
)
from meshgate.controlplane.distribution.tokens import DataplaneTokens
from meshgate.controlplane.mesh_api.documents import body_document, resource_from
from meshgate.controlplane.mesh_api.errors import ApiError, invalid, not_found
from meshgate.errors import Violation
from meshgate.resources.mesh.mesh import Mesh
from meshgate.store import MAX_PAGE_SIZE, InvalidOffset, RevisionGone, Store
from meshgate.store.api import Filter

Handler = Callable[[Request], Awaitable[Response]]
MAX_WATCH_SECONDS = 300.0


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json.dumps(content, separators=(",", ":")).encode()


class MeshApi:
    """Handlers over one store, distribution engine and token issuer."""

    def __init__(
        self,
        store: Store,
        engine: DistributionEngine,
        tokens: DataplaneTokens,
        admin_token: str | None,
    ) -> None:
        self.store = store
        self.engine = engine
        self.tokens = tokens
        self.admin_token = admin_token

    def routes(self) -> list[Route]:
        e = self._endpoint
        return [
            Route("/", e(self.index)),
            Route("/meshes", e(self.list_meshes)),
            Route("/meshes/{mesh}", e(self.mesh), methods=["GET", "PUT", "DELETE"]),
            Route("/meshes/{mesh}/dataplanes/{name}/_config", e(self.inspect_config)),
            Route("/meshes/{mesh}/dataplanes/{name}/_rules", e(self.inspect_rules)),
            Route("/meshes/{mesh}/dataplanes/{name}/_overview", e(self.inspect_overview)),
            Route("/meshes/{mesh}/dataplanes+insights", e(self.list_overviews)),
            Route("/meshes/{mesh}/{collection}", e(self.list_collection)),
            Route(
                "/meshes/{mesh}/{collection}/{name}", e(self.item), methods=["GET", "PUT", "DELETE"]
            ),
            Route("/tokens/dataplane", e(self.issue_token), methods=["POST"]),
        ]

    def _endpoint(self, handler: Handler) -> Handler:
        async def wrapped(request: Request) -> Response:
            try:
                self._authorize(request)
                return await handler(request)
            except ApiError as exc:
                return JSON(exc.body, status_code=exc.status)
            except InvalidOffset:
                return JSON(ApiError(400, "Invalid offset").body, status_code=400)

        return wrapped

    def _authorize(self, request: Request) -> None:
        if self.admin_token is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), self.admin_token.encode()
        ):
            raise ApiError(401, "Unauthorized", "a valid admin token is required")

    # ------------------------------------------------------------------ meshes

    async def index(self, request: Request) -> Response:
        revision = await self.store.revision()
        return JSON({"product": "meshgate", "version": __version__, "revision": revision})

    async def list_meshes(self, request: Request) -> Response:
        return JSON(await self._page(request, "meshes", None))

    async def mesh(self, request: Request) -> Response:
        name = request.path_params["mesh"]
        if request.method == "GET":
            doc = await self.store.get(entity_type("meshes"), name)
            if doc is None:
                raise not_found(f"mesh '{name}'")
            return JSON(strip_id(doc))
        if request.method == "DELETE":
            if not await delete_mesh(self.store, name):
                raise not_found(f"mesh '{name}'")
            return JSON({})
        resource = resource_from(body_document(await request.body()), "Mesh", name, None)
        assert isinstance(resource, Mesh)
        created = await create_mesh(self.store, resource)
        return JSON({}, status_code=201 if created else 200)

    # ------------------------------------------------------------------ mesh-scoped resources

    def _kind(self, collection: str) -> str:
        kind = KINDS.get(collection)
        if kind is None:
            raise not_found(f"collection '{collection}' (known: {', '.join(sorted(KINDS))})")
        return kind

    async def _require_mesh(self, mesh: str) -> None:
        if await self.store.get(entity_type("meshes"), mesh) is None:
            raise not_found(f"mesh '{mesh}'")

    async def list_collection(self, request: Request) -> Response:
        mesh, collection = request.path_params["mesh"], request.path_params["collection"]
        self._kind(collection)
        await self._require_mesh(mesh)
        params = request.query_params
        if params.get("watch") == "true":
            since = _int_param(params.get("revision"), "revision", 0)
            timeout = min(
                float(_int_param(params.get("timeout"), "timeout", 30)), MAX_WATCH_SECONDS
            )
            await self._wait_for_change({entity_type(collection)}, since, timeout)
        return JSON(await self._page(request, collection, {"mesh": mesh}))

    async def item(self, request: Request) -> Response:
        mesh, collection = request.path_params["mesh"], request.path_params["collection"]
        name = request.path_params["name"]
        kind = self._kind(collection)
        key = (entity_type(collection), entity_id(mesh, name))
        if request.method == "GET":
            doc = await self.store.get(*key)
            if doc is None:
                raise not_found(f"{kind} '{name}' in mesh '{mesh}'")
            return JSON(strip_id(doc))
        if request.method == "DELETE":
            if not await delete_resource(self.store, collection, mesh, name):
                raise not_found(f"{kind} '{name}' in mesh '{mesh}'")
            return JSON({})
        resource = resource_from(body_document(await request.body()), kind, name, mesh)
        if await self.store.get(entity_type("meshes"), mesh) is None:
            raise invalid([Violation("mesh", f"mesh '{mesh}' does not exist")])
        async with self.store.transaction() as tx:
            created = await put_resource(tx, resource)
        return JSON({}, status_code=201 if created else 200)

    async def _page(
        self, request: Request, collection: str, where: Filter | None
    ) -> dict[str, Any]:
        params = request.query_params
        size = _int_param(params.get("size"), "size", 100)
        if not 1 <= size <= MAX_PAGE_SIZE:
            raise invalid([Violation("size", f"must be between 1 and {MAX_PAGE_SIZE}")])
        revision = await self.store.revision()
        kind = entity_type(collection)
        page = await self.store.list(kind, size=size, offset=params.get("offset"), filter=where)
        total = await self._count(kind, where)
        next_url = None
        if page.next_offset is not None:
            query = urlencode({"size": size, "offset": page.next_offset})
            next_url = f"{request.url.path}?{query}"
        items = [strip_id(doc) for doc in page.data]
        return {"total": total, "items": items, "next": next_url, "revision": revision}

    async def _count(self, kind: str, where: Filter | None) -> int:
        total, offset = 0, None
        while True:
            page = await self.store.list(kind, size=MAX_PAGE_SIZE, offset=offset, filter=where)
            total += len(page.data)
            if page.next_offset is None:
                return total
            offset = page.next_offset

    async def _wait_for_change(self, kinds: set[str], since: int, timeout: float) -> None:
        async def changed() -> None:
            seen = since
            async with contextlib.aclosing(self.store.subscribe()) as revisions:
                async for revision in revisions:
                    if revision <= seen:
                        continue
                    try:
                        changes = await self.store.changes_since(seen)
                    except RevisionGone:
                        return
                    if any(change.type in kinds for change in changes):
                        return
                    seen = revision

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed(), timeout)

    # ------------------------------------------------------------------ inspect

    async def inspect_config(self, request: Request) -> Response:
        mesh, name = request.path_params["mesh"], request.path_params["name"]
        snap = await inspect.snapshot_of(self.engine, mesh, name)
        if snap is None:
            raise not_found(f"dataplane '{name}' in mesh '{mesh}'")
        return JSON(snap.model_dump(mode="json"))

    async def inspect_rules(self, request: Request) -> Response:
        mesh, name = request.path_params["mesh"], request.path_params["name"]
        rules = inspect.rules(self.engine, mesh, name)
        if rules is None:
            raise not_found(f"dataplane '{name}' in mesh '{mesh}'")
        return JSON(rules)

    async def inspect_overview(self, request: Request) -> Response:
        mesh, name = request.path_params["mesh"], request.path_params["name"]
        doc = await self.store.get(entity_type("dataplanes"), entity_id(mesh, name))
        if doc is None:
            raise not_found(f"dataplane '{name}' in mesh '{mesh}'")
        return JSON(
            {"dataplane": strip_id(doc), "status": await inspect.overview(self.engine, mesh, name)}
        )

    async def list_overviews(self, request: Request) -> Response:
        """Kuma's ``dataplanes+insights``: the ``dataplanes`` page, each item with its status
        as ``_overview`` gives it (online, at which control plane, ACKs, certificate)."""
        mesh = request.path_params["mesh"]
        await self._require_mesh(mesh)
        page = await self._page(request, "dataplanes", {"mesh": mesh})
        names = [str(item.get("name")) for item in page["items"]]
        statuses = await inspect.overviews(self.engine, mesh, names)
        page["items"] = [
            {"dataplane": item, "status": status}
            for item, status in zip(page["items"], statuses, strict=True)
        ]
        return JSON(page)

    # ------------------------------------------------------------------ tokens

    async def issue_token(self, request: Request) -> Response:
        if self.admin_token is None and not _loopback(request):
            raise ApiError(403, "Forbidden", "tokens are issued to loopback clients only")
        doc = body_document(await request.body())
        problems: list[Violation] = []
        mesh, name, tags = doc.get("mesh", "default"), doc.get("name"), doc.get("tags") or {}
        valid_for = doc.get("validFor")
        if not isinstance(mesh, str):
            problems.append(Violation("mesh", "expected a string"))
        if name is not None and not isinstance(name, str):
            problems.append(Violation("name", "expected a string"))
        if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
            problems.append(Violation("tags", "expected a mapping of strings"))
        if valid_for is not None and (not isinstance(valid_for, int) or valid_for <= 0):
            problems.append(Violation("validFor", "expected a positive number of seconds"))
        unknown = set(doc) - {"mesh", "name", "tags", "validFor"}
        problems += [Violation(field, "unknown field") for field in sorted(unknown)]
        if problems:
            raise invalid(problems)
        await self._require_mesh(mesh)
        token = await self.tokens.issue(mesh, name=name, tags=tags, valid_for=valid_for)
        return PlainTextResponse(token)


def _int_param(value: str | None, name: str, default: int) -> int:
    if value is None or value == "":
        return default
    if not (value.isascii() and value.isdigit()):
        raise invalid([Violation(name, "expected a non-negative integer")])
    return int(value)


def _loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def create_mesh_app(
    store: Store,
    engine: DistributionEngine,
    tokens: DataplaneTokens,
    *,
    admin_token: str | None = None,
) -> Starlette:
    """The Mesh API as an ASGI app (serve it with ``admin_api.serve_admin``)."""
    api = MeshApi(store, engine, tokens, admin_token)
    return Starlette(routes=api.routes())
