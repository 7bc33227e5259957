"""``GET /config`` (export the store as a declarative file) and ``POST /config`` (replace
everything with a declarative file, atomically).

``POST /config`` accepts the file as a JSON or YAML body, as ``{"config": "<yaml text>"}``, or
as a ``config`` form field (``config=@kong.yml``).  The file is validated whole (every
violation reported, nothing applied on error); ``?check_hash=1`` answers 304 without writing
when the result would equal what is stored.  Plain-text basic-auth passwords are hashed when
the file says ``_transform: true`` (the default).
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
from meshgate.controlplane.admin_api.documents import (
    check_plugin_name,
    hash_password,
    plain_references,
    validate,
)
from meshgate.controlplane.admin_api.errors import (
    DECLARATIVE_CONFIG,
    AdminError,
    dao_error,
    message_error,
    nest_fields,
)
from meshgate.controlplane.admin_api.info import entities_hash
from meshgate.controlplane.admin_api.registry import BY_TYPE
from meshgate.errors import ConfigError, Violation
from meshgate.resources import dump_dict, dump_yaml, load_dict
from meshgate.resources.declarative import parse_text
from meshgate.resources.from_entities import config_from_entities, entities_from_config
from meshgate.store import EntityWrite, Store, UniqueViolation

_YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "text/plain")
_TRUE = ("1", "true", "yes")


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
        raise message_error(400, "expected a declarative configuration in the request body")
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
    except ConfigError as exc:
        raise declarative_error(exc.violations, False) from None
    except RecursionError:
        raise message_error(400, "the declarative configuration is nested too deeply") from None


def _loc(path: str) -> tuple[str | int, ...]:
    """``services[0].routes[1].paths`` → ``("services", 0, "routes", 1, "paths")``."""
    loc: list[str | int] = []
    for part in path.replace("]", "").split("."):
        if not part:
            continue
        name, *indexes = part.split("[")
        if name:
            loc.append(name)
        loc += [int(index) if index.isdigit() else index for index in indexes]
    return tuple(loc)


def declarative_error(violations: list[Violation], flatten: bool) -> AdminError:
    """400, code 14: ``fields`` nested like the document; ``flattened_errors`` on request."""
    texts = "; ".join(str(v) for v in violations)
    error = dao_error(
        400,
        DECLARATIVE_CONFIG,
        f"declarative config is invalid: {texts}",
        nest_fields((_loc(v.path), v.message) for v in violations),
    )
    if flatten:
        error.body["flattened_errors"] = [
            {"path": violation.path, "message": violation.message} for violation in violations
        ]
    return error


def stored_entities(document: Any) -> list[tuple[str, dict[str, Any]]]:
    """The entities a declarative document stores as, normalised like Admin API writes."""
    config = load_dict(document)
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
        raise ConfigError(problems)
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
        if params.get("check_hash", "") in _TRUE:
            _revision, current = await ctx.hasher.current()
            if current == new_hash:
                return Response(status_code=304)
        revision = await _replace(ctx.store, entities)
    except ConfigError as exc:
        raise declarative_error(exc.violations, params.get("flatten_errors", "") in _TRUE) from None
    await ctx.changed()
    counts: dict[str, int] = {}
    for entity_type, _doc in entities:
        counts[entity_type] = counts.get(entity_type, 0) + 1
    return JSONResponse(
        {"configuration_hash": new_hash, "revision": revision, "entities": counts},
        status_code=201,
    )


def config_routes() -> list[Route]:
    return [
        Route("/config", get_config, methods=["GET"]),
        Route("/config", post_config, methods=["POST"]),
    ]
