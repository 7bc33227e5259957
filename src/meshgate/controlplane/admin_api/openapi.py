"""``GET /openapi.json``: an OpenAPI 3.1 description of every Admin API route.

Built from the app's own route table, so it cannot drift from what is served: entity paths
are recognised by their shape (``/{collection}``, ``/{collection}/{key}``, nested and
referenced forms) and get request bodies from the entity models' JSON Schemas; the other
routes are described by the table below.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from meshgate.controlplane.admin_api.context import JSONResponse, context, endpoint
from meshgate.controlplane.admin_api.info import KONG_COMPAT_VERSION
from meshgate.controlplane.admin_api.registry import BY_PATH, BY_TYPE, NESTED, SPECS, EntitySpec

_REF = "#/components/schemas/{model}"
_ENTITY = {"$ref": "#/components/schemas/EntityDocument"}
_ERROR = {"$ref": "#/components/schemas/Error"}
_ERROR_STATUSES = {
    400: "bad request: schema violation, invalid reference, malformed body or query",
    401: "the admin token is missing or wrong",
    404: "no such entity",
    405: "read-only node, or method not allowed",
    409: "unique constraint violation",
    413: "request body too large",
    415: "unsupported content type",
}
_OPEN_OBJECT = {"type": "object"}


def _components() -> dict[str, Any]:
    pairs = [(spec.model, "validation") for spec in SPECS]
    by_model, defs = models_json_schema(pairs, ref_template=_REF)  # type: ignore[arg-type]
    schemas: dict[str, Any] = dict(defs.get("$defs", {}))
    for spec in SPECS:
        ref = by_model[(spec.model, "validation")]
        name = ref["$ref"].rsplit("/", 1)[1]
        full = schemas[name]
        schemas[f"{name}Patch"] = {k: v for k, v in full.items() if k != "required"}
    schemas["EntityDocument"] = {
        "type": "object",
        "required": ["id"],
        "properties": {"id": {"type": "string"}},
    }
    schemas["EntityPage"] = {
        "type": "object",
        "required": ["data", "next"],
        "properties": {
            "data": {"type": "array", "items": _ENTITY},
            "next": {"type": ["string", "null"]},
            "offset": {"type": "string"},
        },
    }
    schemas["Error"] = {
        "type": "object",
        "required": ["message"],
        "properties": {
            "message": {"type": "string"},
            "code": {"type": "integer"},
            "name": {"type": "string"},
            "fields": {},
        },
    }
    return schemas


def _model_ref(spec: EntitySpec, patch: bool) -> dict[str, Any]:
    name = spec.model.__name__ + ("Patch" if patch else "")
    return {"$ref": _REF.format(model=name)}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _responses(ok: int, schema: dict[str, Any] | None, errors: tuple[int, ...]) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    if ok == 204:
        responses["204"] = {"description": "done"}
    else:
        responses[str(ok)] = {"description": "success", "content": _json(schema or _OPEN_OBJECT)}
    for status in (*errors, 401):
        responses[str(status)] = {"description": _ERROR_STATUSES[status], "content": _json(_ERROR)}
    return responses


_LIST_PARAMS = [
    {"name": "size", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
    {"name": "offset", "in": "query", "schema": {"type": "string"}},
    {"name": "tags", "in": "query", "schema": {"type": "string"}},
]
_WRITE_ERRORS = (400, 404, 405, 409, 413, 415)


def _entity_operation(kind: str, method: str, spec: EntitySpec) -> dict[str, Any]:
    page = {"$ref": "#/components/schemas/EntityPage"}
    if kind == "collection" and method == "GET":
        return {"parameters": _LIST_PARAMS, "responses": _responses(200, page, (400, 404))}
    if method == "GET":
        return {"responses": _responses(200, _ENTITY, (404,))}
    if method == "DELETE":
        return {"responses": _responses(204, None, (400, 404, 405))}
    body = {"required": False, "content": _json(_model_ref(spec, patch=method == "PATCH"))}
    ok = 201 if kind == "collection" else 200
    return {"requestBody": body, "responses": _responses(ok, _ENTITY, _WRITE_ERRORS)}


def _classify(path: str) -> tuple[str, EntitySpec] | None:
    """("collection" | "item", spec) for an entity path, None for the others."""
    parts = path.strip("/").split("/")
    top = BY_PATH.get(parts[0])
    if top is None:
        return None
    if len(parts) == 1:
        return "collection", top
    if len(parts) == 2 and parts[1] == "{key}":
        return "item", top
    if len(parts) in (3, 4) and parts[1] == "{parent}":
        for segment, child, _field in NESTED.get(top.store_type, ()):
            if segment == parts[2]:
                if len(parts) == 3:
                    return "collection", child
                return ("item", child) if parts[3] == "{key}" else None
    if len(parts) == 3 and parts[1] == "{key}":
        ref = top.reference(parts[2])
        if ref is not None:
            return "item", BY_TYPE[ref.target]
    return None


_STATIC: dict[tuple[str, str], dict[str, Any]] = {
    ("GET", "/metrics"): {
        "responses": {
            "200": {
                "description": "Prometheus text exposition of the node's metrics",
                "content": {
                    "text/plain; version=0.0.4; charset=utf-8": {"schema": {"type": "string"}}
                },
            },
            "401": {"description": _ERROR_STATUSES[401], "content": _json(_ERROR)},
        }
    },
    ("POST", "/config"): {
        "parameters": [
            {"name": "check_hash", "in": "query", "schema": {"type": "string"}},
            {"name": "flatten_errors", "in": "query", "schema": {"type": "string"}},
        ],
        "requestBody": {"required": True, "content": {**_json(_OPEN_OBJECT)}},
        "responses": {
            **_responses(201, _OPEN_OBJECT, (400, 405, 413, 415)),
            "304": {"description": "the configuration is unchanged (check_hash)"},
        },
    },
    ("POST", "/schemas/{name}/validate"): {
        "requestBody": {"required": False, "content": _json(_OPEN_OBJECT)},
        "responses": _responses(200, _OPEN_OBJECT, (400, 404, 413, 415)),
    },
    ("POST", "/schemas/plugins/validate"): {
        "requestBody": {"required": False, "content": _json(_OPEN_OBJECT)},
        "responses": _responses(200, _OPEN_OBJECT, (400, 413, 415)),
    },
}


def _operation(path: str, method: str) -> dict[str, Any]:
    if (method, path) in _STATIC:
        return _STATIC[(method, path)]
    entity = _classify(path)
    if entity is not None:
        return _entity_operation(entity[0], method, entity[1])
    if path.endswith(("/healthy", "/unhealthy")):
        return {"responses": _responses(204, None, (404,))}
    if path.endswith("/targets/all") or path.endswith("/health"):
        page = {"$ref": "#/components/schemas/EntityPage"}
        return {"parameters": _LIST_PARAMS, "responses": _responses(200, page, (400, 404))}
    if path.startswith("/tags"):
        params = [p for p in _LIST_PARAMS if p["name"] != "tags"]
        return {"parameters": params, "responses": _responses(200, _OPEN_OBJECT, (400,))}
    if method == "GET":
        return {"responses": _responses(200, _OPEN_OBJECT, (404,))}
    return {"responses": _responses(200, _OPEN_OBJECT, (400, 404, 405, 413, 415))}


def build_openapi(routes: list[Any]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        if not isinstance(route, Route):
            continue
        for method in sorted((route.methods or set()) - {"HEAD"}):
            operation = dict(_operation(route.path, method))
            parameters = [
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                for name in re.findall(r"{(\w+)}", route.path)
            ]
            if parameters or "parameters" in operation:
                operation["parameters"] = parameters + list(operation.get("parameters", []))
            operation["operationId"] = f"{method.lower()}{route.path}"
            paths.setdefault(route.path, {})[method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "meshgate Admin API (Kong-compatible)",
            "version": KONG_COMPAT_VERSION,
        },
        "paths": paths,
        "components": {"schemas": _components()},
    }


@endpoint
async def openapi_json(request: Request) -> Response:
    ctx = context(request)
    if ctx.openapi is None:
        ctx.openapi = build_openapi(list(request.app.routes))
    return JSONResponse(ctx.openapi)


def openapi_routes() -> list[Route]:
    return [Route("/openapi.json", openapi_json, methods=["GET"])]
