"""``GET /config`` (export the store as a declarative file) and ``POST /config`` (replace
everything with a declarative file, atomically).

``POST /config`` accepts the file as a JSON or YAML body, as ``{"config": "<yaml text>"}``, or
as a ``config`` form field (``config=@kong.yml``).  The file is validated whole (every
violation reported, nothing applied on error); ``?check_hash=1`` (exactly ``1``, as in Kong)
answers 304 without writing when the result would equal what is stored.  Plain-text
basic-auth passwords are hashed when the file says ``_transform: true`` (the default).

Answers follow Kong 3.x (kong/api/routes/config.lua): 201 with the loaded entities keyed by
entity type, then by id (``{"services": {"<id>": {...}}, ...}``); 400 code 14 with the errors
nested in ``fields``, plus ``flattened_errors`` with ``?flatten_errors=1`` (see
``declarative_errors``).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from meshgate.controlplane.admin_api.body import (
    form_pairs,
    media_type,
    parse_json,
    reject_nul,
    urlencoded_pairs,
)
from meshgate.controlplane.admin_api.context import JSONResponse, context, endpoint
from meshgate.controlplane.admin_api.declarative_errors import admin_problems, declarative_error
from meshgate.controlplane.admin_api.documents import (
    check_plugin_name,
    hash_password,
    plain_references,
    validate,
)
from meshgate.controlplane.admin_api.errors import AdminError, message_error
from meshgate.controlplane.admin_api.info import entities_hash
from meshgate.controlplane.admin_api.registry import BY_TYPE
from meshgate.errors import ConfigError, Violation
from meshgate.resources import dump_dict, dump_yaml, load_dict
from meshgate.resources.declarative import parse_text
from meshgate.resources.from_entities import config_from_entities, entities_from_config
from meshgate.store import EntityWrite, Store, UniqueViolation

_YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "text/plain")
_TRUTHY = ("1", "true", "on", "yes")  # Kong's truthy() for flatten_errors


@endpoint
async def get_config(request: Request) -> Response:
    """200 ``{"config": "<yaml>"}`` (Kong's shape); ``?format=json`` gives the document itself,
    ``?format=yaml`` the YAML text."""
    ctx = context(request)
    dump = await ctx.store.dump_all()
    try:
        config = config_from_entities(dump.entities)
    except ConfigError as exc:
        return JSONResponse(
            {"message": "the stored configuration is invalid", "fields": exc.to_fields()},
            status_code=500,
        )
    fmt = request.query_params.get("format", "")
    if fmt == "json":
        return JSONResponse(dump_dict(config))
    if fmt == "yaml":
        return Response(dump_yaml(config), media_type="application/yaml")
    return JSONResponse({"config": dump_yaml(config)})


async def _declarative_document(request: Request) -> Any:
    kind = media_type(request)
    if kind in ("multipart/form-data", "application/x-www-form-urlencoded"):
        pairs = (
            await form_pairs(request)
            if kind == "multipart/form-data"
            else urlencoded_pairs(await request.body())
        )
        text = dict(pairs).get("config")
        if text is None:
            raise message_error(400, "expected a 'config' field holding the declarative file")
        return _parse(text)
    raw = await request.body()
    if not raw.strip():
        raise message_error(400, "expected a declarative configuration")
    if kind in ("", "application/json") or kind.endswith("+json"):
        data = parse_json(raw)
        if isinstance(data, dict) and isinstance(data.get("config"), str):
            return _parse(data["config"])
        return data
    if kind in _YAML_TYPES:
        try:
            return _parse(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise message_error(400, "the declarative configuration must be UTF-8") from None
    raise message_error(415, f"Unsupported Content-Type '{kind}'")


def _parse(text: str) -> Any:
    try:
        document = parse_text(text, "yaml")
        reject_nul(document)
        return document
    except ConfigError as exc:  # Kong: {"fields": {"error": "failed parsing declarative ..."}}
        unparsed = [
            Violation("error", f"failed parsing declarative configuration: {v.message}")
            for v in exc.violations
        ]
        raise declarative_error(unparsed, None, False) from None
    except RecursionError:
        raise message_error(400, "the declarative configuration is nested too deeply") from None


def stored_entities(document: Any) -> list[tuple[str, dict[str, Any]]]:
    """The entities a declarative document stores as, normalised like Admin API writes.

    ``ConfigError`` lists every problem at its path in the document; the Admin API's own
    checks of plugins and credentials are located there too (``admin_problems``)."""
    located = admin_problems(document)
    try:
        config = load_dict(document)
    except ConfigError as exc:
        seen = {violation.path for violation in exc.violations}
        extra = [violation for violation in located if violation.path not in seen]
        raise ConfigError(exc.violations + extra) from None
    entities: list[tuple[str, dict[str, Any]]] = []
    created: dict[str, Any] = {}
    problems: list[Violation] = []
    for entity_type, doc in entities_from_config(config):
        spec = BY_TYPE[entity_type]
        try:
            if entity_type == "plugins":
                check_plugin_name(doc)
            stored = validate(spec, doc)
        except AdminError as exc:
            problems.append(Violation(f"{entity_type}[{doc.get('id')}]", str(exc)))
            continue
        for ref in spec.references:
            value = plain_references(spec, doc).get(ref.field)
            stored[ref.field] = value if isinstance(value, dict) else None
        if entity_type == "consumers":
            created[stored["id"]] = stored.get("created_at")
        if spec.nested_path is not None:  # credentials: timestamps from their consumer
            stored["created_at"] = doc.get("created_at") or created.get(stored["consumer"]["id"])
            stored.pop("updated_at", None)
            if entity_type == "basicauth_credentials" and config.transform:
                stored["password"] = hash_password(stored["password"], stored["consumer"]["id"])
        entities.append((entity_type, stored))
    if problems:
        raise ConfigError(located or problems)
    return entities


async def _replace(store: Store, entities: list[tuple[str, dict[str, Any]]]) -> int:
    writes = [
        EntityWrite(entity_type, doc, BY_TYPE[entity_type].unique_keys(doc))
        for entity_type, doc in entities
    ]
    try:
        return await store.replace_all(writes)
    except UniqueViolation as exc:
        message = f"uniqueness violation on '{exc.key_name}'"
        raise ConfigError([Violation(f"{exc.entity_type}[{exc.value}]", message)]) from None


async def apply_declarative(store: Store, document: Any) -> int:
    """Make ``store`` hold exactly the entities of a parsed declarative ``document``, stored as
    the Admin API stores them; returns the revision.  ``ConfigError`` lists every problem.

    For the glue: a DB-less node loads its file into a (memory) store with this, then serves
    the Admin API read-only over it.
    """
    return await _replace(store, stored_entities(document))


@endpoint
async def post_config(request: Request) -> Response:
    ctx = context(request)
    ctx.check_writable()
    params = request.query_params
    document = await _declarative_document(request)
    try:
        entities = stored_entities(document)
        new_hash = entities_hash(entities)
        if params.get("check_hash") == "1":
            _revision, current = await ctx.hasher.current()
            if current == new_hash:
                return Response(status_code=304)
        await _replace(ctx.store, entities)
    except ConfigError as exc:
        flatten = params.get("flatten_errors", "").lower() in _TRUTHY
        raise declarative_error(exc.violations, document, flatten) from None
    await ctx.changed()
    loaded: dict[str, dict[str, Any]] = {}
    for entity_type, doc in entities:
        loaded.setdefault(entity_type, {})[str(doc["id"])] = doc
    return JSONResponse(loaded, status_code=201)


def config_routes() -> list[Route]:
    return [
        Route("/config", get_config, methods=["GET"]),
        Route("/config", post_config, methods=["POST"]),
    ]
