"""Introspection endpoints: ``GET /``, ``/status``, ``/endpoints``, ``/plugins/enabled``,
``/schemas/...`` (with ``POST .../validate``) and ``/tags``."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from meshgate.controlplane.admin_api.body import read_entity_body
from meshgate.controlplane.admin_api.context import JSONResponse, context, endpoint
from meshgate.controlplane.admin_api.documents import check_plugin_name, validate
from meshgate.controlplane.admin_api.errors import (
    INVALID_OFFSET,
    dao_error,
    not_found,
)
from meshgate.controlplane.admin_api.info import (
    AVAILABLE_PLUGINS,
    enabled_plugins,
    root_info,
    status_info,
)
from meshgate.controlplane.admin_api.pagination import parse_size
from meshgate.controlplane.admin_api.registry import BY_PATH, BY_TYPE, EntitySpec
from meshgate.controlplane.admin_api.schemas import array_fields, entity_schema, plugin_schema
from meshgate.resources.kong_common import check_tag

_SCHEMA_ALIASES = {spec.path: spec for spec in BY_PATH.values()}


@endpoint
async def root(request: Request) -> Response:
    ctx = context(request)
    database = ctx.node.database
    if database is None:
        database = "off" if ctx.read_only_reason is not None else ctx.store.dialect
    return JSONResponse(root_info(ctx.node, database, await enabled_plugins(ctx.store)))


@endpoint
async def status(request: Request) -> Response:
    ctx = context(request)
    return JSONResponse(await status_info(ctx.hasher, ctx.counters))


@endpoint
async def endpoints(request: Request) -> Response:
    paths = sorted({route.path for route in request.app.routes if isinstance(route, Route)})
    return JSONResponse({"data": paths, "next": None})


@endpoint
async def plugins_enabled(request: Request) -> Response:
    return JSONResponse({"enabled_plugins": sorted(AVAILABLE_PLUGINS)})


def _spec_named(name: str) -> EntitySpec:
    spec = BY_TYPE.get(name) or _SCHEMA_ALIASES.get(name)
    if spec is None:
        raise not_found(f"No entity named '{name}'")
    return spec


@endpoint
async def entity_schema_endpoint(request: Request) -> Response:
    return JSONResponse(entity_schema(_spec_named(request.path_params["name"])))


@endpoint
async def plugin_schema_endpoint(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in AVAILABLE_PLUGINS:
        raise not_found(f"No plugin named '{name}'")
    return JSONResponse(plugin_schema(BY_TYPE["plugins"], name))


@endpoint
async def validate_entity(request: Request) -> Response:
    """``POST /schemas/{entity}/validate``: schema checks only, nothing is stored."""
    spec = _spec_named(request.path_params["name"])
    body = await read_entity_body(request, array_fields(spec))
    if spec.store_type == "plugins":
        check_plugin_name(body)
    raw = {k: v for k, v in body.items() if k not in ("created_at", "updated_at")}
    raw = {k: v for k, v in raw.items() if k not in spec.transient_fields}
    validate(spec, raw)
    return JSONResponse({"message": "schema validation successful"})


@endpoint
async def validate_plugin(request: Request) -> Response:
    spec = BY_TYPE["plugins"]
    body = await read_entity_body(request, array_fields(spec))
    check_plugin_name(body)
    validate(spec, {k: v for k, v in body.items() if k not in ("created_at", "updated_at")})
    return JSONResponse({"message": "schema validation successful"})


async def _tag_rows(request: Request, only: str | None) -> list[dict[str, str]]:
    dump = await context(request).store.dump_all()
    rows = [
        {"tag": tag, "entity_name": entity.type, "entity_id": entity.id}
        for entity in dump.entities
        if entity.type in BY_TYPE
        for tag in entity.tags
        if only is None or tag == only
    ]
    rows.sort(key=lambda row: (row["tag"], row["entity_name"], row["entity_id"]))
    return rows


@endpoint
async def tags(request: Request) -> Response:
    """``GET /tags`` and ``GET /tags/{tag}``: (tag, entity_name, entity_id) rows, paginated."""
    only = request.path_params.get("tag")
    if only is not None:
        try:
            check_tag(only)
        except ValueError as exc:
            raise dao_error(400, 11, f"invalid option (tags: {exc})", {"tags": str(exc)}) from None
    size = parse_size(request.query_params.get("size"))
    offset_text = request.query_params.get("offset") or "0"
    if not (offset_text.isascii() and offset_text.isdigit()):
        raise dao_error(400, INVALID_OFFSET, f"'{offset_text}' is not a valid offset")
    start = int(offset_text)
    rows = await _tag_rows(request, only)
    page = rows[start : start + size]
    body: dict[str, Any] = {"data": page, "next": None}
    if start + size < len(rows):
        body["offset"] = str(start + size)
        body["next"] = f"{request.url.path}?offset={start + size}&size={size}"
    return JSONResponse(body)


@endpoint
async def metrics(request: Request) -> Response:
    """The node's Prometheus metrics (all workers summed), as Kong's Admin API serves them."""
    from meshgate.plugins.prometheus.exposition import render_metrics

    body, content_type = await asyncio.to_thread(render_metrics)
    return Response(body, media_type=content_type)


@endpoint
async def asyncapi(request: Request) -> Response:
    """AsyncAPI 3 document of the event routes (kafka-* plugins) in the stored config."""
    from meshgate.compiler import NodeSettings, compile_gateway
    from meshgate.events.http_api.asyncapi import asyncapi_document
    from meshgate.resources.from_entities import config_from_entities

    ctx = context(request)
    dump = await ctx.store.dump_all()
    node = NodeSettings.from_proxy_listen(", ".join(ctx.node.proxy_listen))
    snap = compile_gateway(config_from_entities(dump.entities), node)
    return JSONResponse(asyncapi_document(snap))


def meta_routes() -> list[Route]:
    return [
        Route("/", root, methods=["GET"]),
        Route("/asyncapi.json", asyncapi, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/status", status, methods=["GET"]),
        Route("/endpoints", endpoints, methods=["GET"]),
        Route("/plugins/enabled", plugins_enabled, methods=["GET"]),
        Route("/schemas/plugins/validate", validate_plugin, methods=["POST"]),
        Route("/schemas/plugins/{name}", plugin_schema_endpoint, methods=["GET"]),
        Route("/plugins/schema/{name}", plugin_schema_endpoint, methods=["GET"]),
        Route("/schemas/{name}/validate", validate_entity, methods=["POST"]),
        Route("/schemas/{name}", entity_schema_endpoint, methods=["GET"]),
        Route("/tags", tags, methods=["GET"]),
        Route("/tags/{tag}", tags, methods=["GET"]),
    ]
