"""Entity endpoints, generated from the registry: collections, items, nested collections
(``/services/{s}/routes``), referenced entities (``/routes/{r}/service``) and the target extras
(``/upstreams/{u}/targets/all``, ``.../healthy|unhealthy``, ``/upstreams/{u}/health``).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from meshgate.controlplane.admin_api.body import read_entity_body
from meshgate.controlplane.admin_api.context import (
    Handler,
    JSONResponse,
    context,
    endpoint,
    no_content,
)
from meshgate.controlplane.admin_api.crud import Scope
from meshgate.controlplane.admin_api.documents import find
from meshgate.controlplane.admin_api.errors import not_found
from meshgate.controlplane.admin_api.pagination import list_query, page_body
from meshgate.controlplane.admin_api.registry import BY_TYPE, NESTED, SPECS, EntitySpec
from meshgate.controlplane.admin_api.schemas import array_fields

Parent = tuple[EntitySpec, str]  # (parent spec, the child's field naming the parent)
COLLECTION_METHODS = ["GET", "POST"]
ITEM_METHODS = ["GET", "PUT", "PATCH", "DELETE"]
_LIST_FILTERS = {"consumers": ("custom_id", "username"), "plugins": ("name",)}


def _skip_hash(request: Request) -> bool:
    return request.query_params.get("skip_hash", "").lower() in ("1", "true", "yes")


async def _scope(request: Request, parent: Parent | None) -> Scope | None:
    if parent is None:
        return None
    parent_spec, field = parent
    return await context(request).ops.scope_of(parent_spec, request.path_params["parent"], field)


def collection_handler(spec: EntitySpec, parent: Parent | None) -> Handler:
    fields = array_fields(spec)

    @endpoint
    async def collection(request: Request) -> Response:
        ctx = context(request)
        if request.method != "GET":
            ctx.check_writable()
        scope = await _scope(request, parent)
        if request.method == "GET":
            params = request.query_params
            filters = {
                name: params[name]
                for name in _LIST_FILTERS.get(spec.store_type, ())
                if name in params
            }
            page = await ctx.ops.list(spec, list_query(params, filters), scope)
            return JSONResponse(page_body(page, request.url.path, params))
        body = await read_entity_body(request, fields)
        doc = await ctx.ops.create(spec, body, scope, skip_hash=_skip_hash(request))
        return JSONResponse(doc, status_code=201)

    return collection


def item_handler(spec: EntitySpec, parent: Parent | None) -> Handler:
    fields = array_fields(spec)

    @endpoint
    async def item(request: Request) -> Response:
        ctx = context(request)
        if request.method != "GET":
            ctx.check_writable()
        scope = await _scope(request, parent)
        key = request.path_params["key"]
        if request.method == "GET":
            return JSONResponse(await ctx.ops.get(spec, key, scope))
        if request.method == "DELETE":
            await ctx.ops.delete(spec, key, scope)
            return no_content()
        body = await read_entity_body(request, fields)
        if request.method == "PUT":
            doc = await ctx.ops.upsert(spec, key, body, scope, skip_hash=_skip_hash(request))
        else:
            doc = await ctx.ops.patch(spec, key, body, scope, skip_hash=_skip_hash(request))
        return JSONResponse(doc)

    return item


def referenced_handler(spec: EntitySpec, field: str) -> Handler:
    @endpoint
    async def referenced(request: Request) -> Response:
        ctx = context(request)
        target, doc = await ctx.ops.referenced(spec, request.path_params["key"], field)
        if request.method == "GET":
            return JSONResponse(doc)
        ctx.check_writable()
        body = await read_entity_body(request, array_fields(target))
        return JSONResponse(await ctx.ops.patch(target, str(doc["id"]), body, None))

    return referenced


@endpoint
async def mark_target_health(request: Request) -> Response:
    """``PUT|POST /upstreams/{u}/targets/{t}[/{address}]/healthy|unhealthy``: recorded for the
    balancers (node-local, so allowed on read-only nodes, as in Kong's DB-less mode)."""
    ctx = context(request)
    upstream = await find(ctx.store, BY_TYPE["upstreams"], request.path_params["parent"])
    if upstream is None:
        raise not_found()
    scope = ("upstream", str(upstream["id"]))
    target = await find(ctx.store, BY_TYPE["targets"], request.path_params["key"], scope)
    if target is None:
        raise not_found()
    status = request.url.path.rsplit("/", 1)[1]
    subject = request.path_params.get("address") or str(target["id"])
    ctx.target_health[(str(upstream["id"]), subject)] = status
    return no_content()


@endpoint
async def upstream_health(request: Request) -> Response:
    """``GET /upstreams/{u}/health``: each target with its health as this node knows it."""
    ctx = context(request)
    spec = BY_TYPE["upstreams"]
    upstream = await find(ctx.store, spec, request.path_params["parent"])
    if upstream is None:
        raise not_found()
    checks_on = _healthchecks_enabled(upstream.get("healthchecks") or {})
    page = await ctx.ops.list(
        BY_TYPE["targets"],
        list_query(request.query_params),
        Scope("upstream", str(upstream["id"])),
    )
    data = []
    for target in page.data:
        override = ctx.target_health.get((str(upstream["id"]), str(target["id"])))
        if override is not None:
            health = override.upper()
        else:
            health = "HEALTHY" if checks_on else "HEALTHCHECKS_OFF"
        data.append({**target, "health": health, "data": {"weight": target.get("weight")}})
    body = page_body(page, request.url.path, request.query_params)
    body["data"] = data
    body["node_id"] = ctx.node.node_id
    return JSONResponse(body)


def _healthchecks_enabled(healthchecks: dict[str, object]) -> bool:
    active = healthchecks.get("active")
    passive = healthchecks.get("passive")
    intervals = []
    if isinstance(active, dict):
        for side in ("healthy", "unhealthy"):
            record = active.get(side)
            if isinstance(record, dict):
                intervals.append(record.get("interval") or 0)
    counters = []
    if isinstance(passive, dict):
        for side, names in (
            ("healthy", ("successes",)),
            ("unhealthy", ("tcp_failures", "timeouts", "http_failures")),
        ):
            record = passive.get(side)
            if isinstance(record, dict):
                counters += [record.get(name) or 0 for name in names]
    return any(intervals) or any(counters)


def _target_routes(upstreams: EntitySpec) -> list[Route]:
    targets = BY_TYPE["targets"]
    base = f"/{upstreams.path}/{{parent}}/targets"
    parent: Parent = (upstreams, "upstream")
    marks = []
    for status in ("healthy", "unhealthy"):
        marks.append(Route(f"{base}/{{key}}/{status}", mark_target_health, methods=["PUT", "POST"]))
        marks.append(
            Route(
                f"{base}/{{key}}/{{address}}/{status}", mark_target_health, methods=["PUT", "POST"]
            )
        )
    return [
        Route(f"{base}/all", collection_handler(targets, parent), methods=["GET"]),
        Route(f"/{upstreams.path}/{{parent}}/health", upstream_health, methods=["GET"]),
        *marks,
    ]


def entity_routes() -> list[Route]:
    """Every entity route, literal segments before path parameters where both could match."""
    routes: list[Route] = []
    for spec in SPECS:
        if spec.store_type == "upstreams":
            routes += _target_routes(spec)
        for segment, child, field in NESTED.get(spec.store_type, ()):
            base = f"/{spec.path}/{{parent}}/{segment}"
            routes.append(
                Route(base, collection_handler(child, (spec, field)), methods=COLLECTION_METHODS)
            )
            routes.append(
                Route(f"{base}/{{key}}", item_handler(child, (spec, field)), methods=ITEM_METHODS)
            )
        if spec.store_type == "targets":
            continue  # targets only exist under their upstream, as in Kong
        for ref in spec.references:
            routes.append(
                Route(f"/{spec.path}/{{key}}/{ref.field}", referenced_handler(spec, ref.field),
                      methods=["GET", "PATCH"])
            )  # fmt: skip
        routes.append(
            Route(f"/{spec.path}", collection_handler(spec, None), methods=COLLECTION_METHODS)
        )
        routes.append(
            Route(f"/{spec.path}/{{key}}", item_handler(spec, None), methods=ITEM_METHODS)
        )
    return routes
