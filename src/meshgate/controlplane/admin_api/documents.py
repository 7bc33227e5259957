"""Turn a request body into the document the store keeps (and the Admin API shows).

A document is the entity's model, validated with every error collected, dumped with all fields
(defaults included), references as ``{"id": ...}`` records pointing at entities that exist,
server-set ``id``/``created_at``/``updated_at``, generated credential secrets, and basic-auth
passwords hashed the way Kong hashes them: ``sha1(password .. consumer_id)`` in hex.  The
salted SHA-1 is kept (rather than bcrypt) because Kong-exported configs carry such hashes:
importing one with ``_transform: false`` or ``?skip_hash=true`` must keep working.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from meshgate.compiler.vault import contains_reference
from meshgate.controlplane.admin_api.credential_ttl import visible
from meshgate.controlplane.admin_api.errors import (
    AdminError,
    Loc,
    foreign_key_violation,
    schema_violation,
)
from meshgate.controlplane.admin_api.info import AVAILABLE_PLUGINS
from meshgate.controlplane.admin_api.registry import (
    BY_TYPE,
    EntitySpec,
    Reference,
    is_uuid,
    key_lookup,
)
from meshgate.errors import ConfigError
from meshgate.proxy.filters.registry import validate_plugin_config
from meshgate.resources.kong import EntityViolations
from meshgate.store import Doc, Transaction
from meshgate.store.api import StoreReader

SERVER_FIELDS = ("created_at", "updated_at")
_MESSAGES = {"extra_forbidden": "unknown field", "missing": "required field missing"}
# credential kind -> fields Kong generates when a request leaves them out
GENERATED_FIELDS = {
    "keyauth_credentials": ("key",),
    "hmacauth_credentials": ("secret",),
    "jwt_secrets": ("key", "secret"),
}


def pydantic_violations(error: ValidationError) -> list[tuple[Loc, str]]:
    """Every error of a ``ValidationError`` as ``(field path, message)``."""
    found: list[tuple[Loc, str]] = []
    for detail in error.errors():
        loc: Loc = tuple(
            part
            for part in detail["loc"]
            if isinstance(part, int) or not ("[" in part or "(" in part)
        )
        cause = (detail.get("ctx") or {}).get("error")
        if isinstance(cause, EntityViolations):
            found += [(loc + sub, message) for sub, message in cause.items]
            continue
        message = _MESSAGES.get(detail["type"], detail["msg"]).removeprefix("Value error, ")
        if detail["type"] == "literal_error":
            expected = str((detail.get("ctx") or {}).get("expected", ""))
            choices = expected.replace("'", "").replace(" or ", ", ")
            message = f"expected one of: {choices}"
        found.append((loc, message))
    return found


def _whole_numbers(value: Any) -> Any:
    """Integral floats as ints (Kong's clients decode e.g. healthcheck intervals as ints)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _whole_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_whole_numbers(item) for item in value]
    return value


def hash_password(password: str, consumer_id: str) -> str:
    """Kong's basic-auth hash: SHA-1 of the password salted with the consumer id, in hex."""
    return hashlib.sha1((password + consumer_id).encode(), usedforsecurity=False).hexdigest()


def now_for(spec: EntitySpec) -> float | int:
    """Timestamps in seconds; targets keep milliseconds as Kong does."""
    return round(time.time(), 3) if spec.millis else int(time.time())


async def find(
    reader: StoreReader, spec: EntitySpec, key: str, parent: tuple[str, str] | None = None
) -> Doc | None:
    """The entity ``key`` names (an id, else an endpoint key) within ``parent`` if given.

    ``parent`` is ``(field, parent_id)``: an entity that does not belong to it is not found;
    neither is a credential whose ttl has run out.
    """
    doc = await reader.get(spec.store_type, key) if is_uuid(key) else None
    if doc is None:
        lookup = key_lookup(spec, key, parent[1] if parent else None)
        if lookup is not None:
            doc = await reader.get_by_key(spec.store_type, *lookup)
    if doc is not None and parent is not None:
        ref = doc.get(parent[0])
        if not isinstance(ref, dict) or ref.get("id") != parent[1]:
            return None
    if doc is not None and not visible(spec, doc):
        return None
    return doc


async def resolve_reference(reader: StoreReader, ref: Reference, value: str) -> str:
    """The id of the entity a reference value (id or endpoint key) names; 400 when none."""
    target = BY_TYPE[ref.target]
    doc = await find(reader, target, value)
    if doc is None:
        raise foreign_key_violation(ref.field, ref.target, value)
    return str(doc["id"])


def check_plugin_name(body: Mapping[str, Any]) -> None:
    """Only plugins this node runs may be configured (Kong's message when one is not), and
    their ``config`` must pass the plugin's own schema (every violation at ``config.<field>``).
    The config is stored as given: defaults are filled when the snapshot is compiled."""
    problems = plugin_problems(body)
    if problems:
        raise schema_violation(problems)


def plugin_problems(body: Mapping[str, Any]) -> list[tuple[Loc, str]]:
    """What ``check_plugin_name`` refuses, as ``(field path, message)`` pairs."""
    name = body.get("name")
    if isinstance(name, str) and name and name not in AVAILABLE_PLUGINS:
        message = f"plugin '{name}' not enabled; add it to the 'plugins' configuration property"
        return [(("name",), message)]
    config = body.get("config")
    if isinstance(name, str) and name and (config is None or isinstance(config, Mapping)):
        try:
            validate_plugin_config(name, config or {})
        except ConfigError as exc:
            # A field holding a vault reference is checked once resolved, at compile time.
            return [
                (tuple(parts), v.message)
                for v in exc.violations
                if not _holds_reference(config or {}, parts := _path_parts(v.path))
            ]
    return []


def _holds_reference(config: Mapping[str, Any], path: list[str | int]) -> bool:
    """Whether the value at ``path`` (``config``, field, …), or the deepest part of it that
    exists, contains a ``{vault://…}`` reference."""
    node: Any = config
    for part in path[1:]:
        if isinstance(part, int):
            if not (isinstance(node, list) and 0 <= part < len(node)):
                break
            node = node[part]
        elif isinstance(node, Mapping) and part in node:
            node = node[part]
        else:
            break
    return contains_reference(node)


def _path_parts(path: str) -> list[str | int]:
    """``config.limits[0].minute`` → ``["config", "limits", 0, "minute"]``."""
    parts: list[str | int] = []
    for piece in path.replace("]", "").split("."):
        name, _, index = piece.partition("[")
        if name:
            parts.append(name)
        if index.isdigit():
            parts.append(int(index))
    return parts


def plain_references(spec: EntitySpec, raw: Mapping[str, Any]) -> dict[str, Any]:
    """References given as records with more than the id (decK sends ``{"id", "name"}``)
    are reduced to the id, which is what they mean."""
    plain = dict(raw)
    for ref in spec.references:
        value = plain.get(ref.field)
        if isinstance(value, dict) and isinstance(value.get("id"), str):
            plain[ref.field] = {"id": value["id"]}
    return plain


def validate(spec: EntitySpec, raw: Mapping[str, Any]) -> Doc:
    """Validate ``raw`` with the entity's model; the full document (all fields) or a 400.

    References come out as plain strings (an id or an endpoint key), to be resolved."""
    try:
        model = spec.model.model_validate(plain_references(spec, raw))
    except ValidationError as exc:
        raise schema_violation(pydantic_violations(exc)) from None
    doc: Doc = _whole_numbers(model.model_dump(mode="json"))
    for name in spec.dropped_fields:
        doc.pop(name, None)
    for path in spec.empty_as_null:
        _null_when_empty(doc, path)
    return doc


def _null_when_empty(doc: Doc, path: tuple[str, ...]) -> None:
    holder: Any = doc
    for part in path[:-1]:
        holder = holder.get(part) if isinstance(holder, dict) else None
    if isinstance(holder, dict) and holder.get(path[-1]) in ([], {}):
        holder[path[-1]] = None


async def build_document(
    reader: StoreReader | Transaction,
    spec: EntitySpec,
    body: Mapping[str, Any],
    *,
    entity_id: str,
    existing: Doc | None,
    new_password: bool,
    skip_hash: bool = False,
) -> Doc:
    """The stored document for ``body`` (already merged with ``existing`` for a PATCH).

    ``new_password``: the body brought a basic-auth password in plain text (hash it unless
    ``skip_hash``); otherwise the stored password is already a hash.
    """
    raw = {
        key: value
        for key, value in body.items()
        if key not in SERVER_FIELDS and key not in spec.transient_fields
    }
    given_id = raw.get("id")
    if given_id is not None and given_id != entity_id:
        raise schema_violation([(("id",), "cannot change the id of an entity")])
    raw["id"] = entity_id
    for name in GENERATED_FIELDS.get(spec.store_type, ()):
        if raw.get(name) is None:
            raw[name] = secrets.token_hex(16)
    if spec.store_type == "plugins":
        check_plugin_name(raw)
    doc = validate(spec, raw)
    for ref in spec.references:
        value = doc.get(ref.field)
        if value is not None:
            doc[ref.field] = {"id": await resolve_reference(reader, ref, value)}
    if spec.store_type == "services" and doc.get("ca_certificates"):
        await _check_ca_certificates(reader, doc["ca_certificates"])
    if spec.store_type == "basicauth_credentials" and new_password and not skip_hash:
        doc["password"] = hash_password(doc["password"], doc["consumer"]["id"])
    now = now_for(spec)
    doc["created_at"] = existing.get("created_at", now) if existing else now
    if spec.has_updated_at:
        doc["updated_at"] = now
    else:
        doc.pop("updated_at", None)
    return doc


async def _check_ca_certificates(reader: StoreReader, ids: list[str]) -> None:
    problems: list[tuple[Loc, str]] = []
    for index, ca_id in enumerate(ids):
        if await reader.get("ca_certificates", ca_id) is None:
            problems.append(
                (("ca_certificates", index), f"CA certificate '{ca_id}' does not exist")
            )
    if problems:
        raise schema_violation(problems)


def unique_error_fields(spec: EntitySpec, key_name: str, doc: Doc) -> dict[str, Any]:
    """The fields Kong shows for a UNIQUE violation on ``key_name``."""
    names = spec.unique_fields.get(key_name, (key_name,))
    return {name: doc.get(name) for name in names}


def require_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise AdminError(400, {"message": "the request body must be a JSON object"})
    return body


def merge(
    existing: Mapping[str, Any], patch: Mapping[str, Any], replaced: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """PATCH semantics: records merge field by field; arrays, scalars, ``headers`` maps and
    the ``replaced`` fields (references) are replaced whole, as Kong does."""
    merged = dict(existing)
    for key, value in patch.items():
        current = merged.get(key)
        if (
            isinstance(value, dict)
            and isinstance(current, dict)
            and key != "headers"
            and key not in replaced
        ):
            merged[key] = merge(current, value)
        else:
            merged[key] = value
    return merged
