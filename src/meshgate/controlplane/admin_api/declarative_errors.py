"""``POST /config`` errors in Kong's two shapes, and the Admin-only checks located in the file.

Kong answers an invalid declarative file with 400, code 14 (kong/api/routes/config.lua,
kong/db/errors.lua):

* ``fields``: the errors nested like the document — records as objects, arrays as arrays
  (``null`` where an item is fine), an entity's own rules under ``"@entity"`` as a list — and
  ``message``: ``declarative config is invalid: `` followed by that table written the way
  Lua's penlight writes it;
* with ``?flatten_errors=1`` (``true``/``on``/``yes``), also ``flattened_errors``: one item per
  entity in error, ``{entity_type, entity_name, entity_id, entity_tags, entity, errors}``,
  each error ``{"type": "field", "field": "healthchecks.active.concurrency", "message"}``
  (array positions counted from 1, as Lua does: ``tags.3``) or ``{"type": "entity",
  "message"}``.  Nested entities are listed on their own, their ``entity`` without its nested
  collections and, when its parent has a valid id, with the parent's foreign key added.
  ``entity_name``/``entity_id``/``entity_tags`` are left out unless they are a non-empty
  string, a UUID and a list of strings.  What belongs to no entity (a top-level key) stays
  in ``fields``, and ``message`` describes only that.

Violations arrive as meshgate paths (``services[0].routes[1].paths[0]``) into the parsed
document.  ``admin_problems`` adds the checks the Admin API makes and the file loader does not
(plugin availability and config schema, the strict credential models), at such paths.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from meshgate.controlplane.admin_api.documents import (
    GENERATED_FIELDS,
    plugin_problems,
    pydantic_violations,
)
from meshgate.controlplane.admin_api.errors import DECLARATIVE_CONFIG, AdminError, dao_error
from meshgate.errors import Violation
from meshgate.resources.declarative_walk import ENTITY_MODELS, NESTED
from meshgate.resources.kong_consumers import CREDENTIAL_KINDS
from meshgate.resources.kong_credentials import CREDENTIAL_MODELS

Token = str | int
_PLACEHOLDER_ID = "00000000-0000-4000-8000-000000000000"
_LOADERS = (("id",), ("consumer",))  # fields the file loader checks and reports itself
_TOP_LEVEL_KINDS = frozenset(ENTITY_MODELS) | frozenset(CREDENTIAL_KINDS)
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PATH_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


@dataclass(frozen=True, slots=True)
class Located:
    """One entity of the document: its collection, where it sits, and its parent."""

    kind: str
    tokens: tuple[Token, ...]
    item: Any
    parent: Located | None = None
    parent_field: str | None = None


def _children_of(kind: str) -> dict[str, str]:
    """Nested collection key -> the foreign key the nesting sets on the child."""
    nested = dict(NESTED.get(kind, {}))
    if kind == "consumers":
        nested.update(dict.fromkeys(CREDENTIAL_KINDS, "consumer"))
    return nested


def entities_in(document: Any) -> Iterator[Located]:
    """Every entity record of a declarative document, parents before their children."""
    if not isinstance(document, Mapping):
        return
    for key, items in document.items():
        if key in _TOP_LEVEL_KINDS:
            yield from _collection(key, (key,), items, None, None)


def _collection(
    kind: str, at: tuple[Token, ...], items: Any, parent: Located | None, field: str | None
) -> Iterator[Located]:
    if not isinstance(items, list):
        return
    for index, item in enumerate(items):
        here = Located(kind, (*at, index), item, parent, field)
        yield here
        if isinstance(item, Mapping):
            for child_key, child_field in _children_of(kind).items():
                if child_key in item:
                    yield from _collection(
                        child_key, (*here.tokens, child_key), item[child_key], here, child_field
                    )


def path_text(tokens: tuple[Token, ...]) -> str:
    """``("services", 0, "paths", 1)`` → ``services[0].paths[1]``."""
    text = ""
    for token in tokens:
        if isinstance(token, int):
            text += f"[{token}]"
        else:
            text = f"{text}.{token}" if text else token
    return text


def path_tokens(path: str) -> tuple[Token, ...]:
    """``services[0].paths[1]`` → ``("services", 0, "paths", 1)``."""
    return tuple(
        int(index) if index else name for name, index in _PATH_TOKEN.findall(path) if name or index
    )


# --------------------------------------------------------------------------- Admin-only checks


def admin_problems(document: Any) -> list[Violation]:
    """Problems the Admin API's own checks find in the document's plugins and credentials,
    each at its path in the document."""
    found: list[Violation] = []
    for entity in entities_in(document):
        if not isinstance(entity.item, Mapping):
            continue
        if entity.kind == "plugins":
            problems = plugin_problems(entity.item)
        elif entity.kind in CREDENTIAL_MODELS:
            problems = _credential_problems(entity.kind, entity.item)
        else:
            continue
        found += [Violation(path_text((*entity.tokens, *loc)), msg) for loc, msg in problems]
    return found


def _credential_problems(kind: str, item: Mapping[str, Any]) -> list[tuple[tuple[Token, ...], str]]:
    """The credential model's verdict; what the loader fills in or checks itself (the id, the
    consumer, generated secrets) is given a stand-in so only the file's own values are judged."""
    record = {k: v for k, v in item.items() if k != "consumer"}
    record["id"] = _PLACEHOLDER_ID
    record["consumer"] = {"id": _PLACEHOLDER_ID}
    for name in GENERATED_FIELDS.get(kind, ()):
        if record.get(name) is None:
            record[name] = "-"
    try:
        CREDENTIAL_MODELS[kind].model_validate(record)
    except ValidationError as exc:
        return [(loc, msg) for loc, msg in pydantic_violations(exc) if loc[:1] not in _LOADERS]
    return []


# --------------------------------------------------------------------------- error bodies


def declarative_error(violations: list[Violation], document: Any, flatten: bool) -> AdminError:
    """Kong's 400 for an invalid declarative file (``flattened_errors`` when asked)."""
    flattened: list[dict[str, Any]] = []
    remaining = violations
    if flatten and isinstance(document, Mapping):
        flattened, remaining = flatten_violations(violations, document)
    fields = nested_fields(remaining, document)
    error = dao_error(
        400, DECLARATIVE_CONFIG, f"declarative config is invalid: {lua_text(fields)}", fields
    )
    if flatten:
        error.body["flattened_errors"] = flattened
    return error


def _owner(
    tokens: tuple[Token, ...], by_tokens: Mapping[tuple[Token, ...], Located]
) -> Located | None:
    for end in range(len(tokens), 0, -1):
        found = by_tokens.get(tokens[:end])
        if found is not None:
            return found
    return None


def flatten_violations(
    violations: list[Violation], document: Mapping[str, Any]
) -> tuple[list[dict[str, Any]], list[Violation]]:
    """Kong's ``flattened_errors`` and the violations that belong to no entity."""
    by_tokens = {entity.tokens: entity for entity in entities_in(document)}
    grouped: dict[tuple[Token, ...], tuple[Located, list[dict[str, Any]]]] = {}
    remaining: list[Violation] = []
    for violation in violations:
        tokens = path_tokens(violation.path)
        owner = _owner(tokens, by_tokens)
        if owner is None:
            remaining.append(violation)
            continue
        errors = grouped.setdefault(owner.tokens, (owner, []))[1]
        rest = tokens[len(owner.tokens) :]
        if rest:
            field = ".".join(str(t + 1) if isinstance(t, int) else t for t in rest)
            errors.append({"type": "field", "field": field, "message": violation.message})
        else:
            errors.append({"type": "entity", "message": violation.message})
    return [_flattened(owner, errors) for owner, errors in grouped.values()], remaining


def _flattened(owner: Located, errors: list[dict[str, Any]]) -> dict[str, Any]:
    entity = _entity_view(owner)
    item: dict[str, Any] = {}
    name, entity_id, tags = entity.get("name"), entity.get("id"), entity.get("tags")
    if isinstance(name, str) and name:
        item["entity_name"] = name
    if isinstance(entity_id, str) and _is_uuid(entity_id):
        item["entity_id"] = entity_id
    if isinstance(tags, list) and all(isinstance(tag, str) for tag in tags):
        item["entity_tags"] = tags
    item["entity_type"] = owner.kind.removesuffix("s")
    item["entity"] = entity
    item["errors"] = errors
    return item


def _entity_view(owner: Located) -> dict[str, Any]:
    """The entity as the file gave it, minus its nested collections, plus its parent's key."""
    if not isinstance(owner.item, Mapping):
        return {"name": owner.item} if owner.kind == "snis" else {}
    nested = _children_of(owner.kind)
    entity = {k: v for k, v in owner.item.items() if k not in nested}
    parent = owner.parent
    if parent is not None and owner.parent_field and owner.parent_field not in entity:
        parent_id = parent.item.get("id") if isinstance(parent.item, Mapping) else None
        if isinstance(parent_id, str) and _is_uuid(parent_id):
            entity[owner.parent_field] = {"id": parent_id}
    return entity


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def nested_fields(violations: list[Violation], document: Any) -> dict[str, Any]:
    """Kong's nested ``fields``: an error on an entity itself goes in its ``"@entity"`` list."""
    entities = {entity.tokens for entity in entities_in(document)}
    root: dict[str, Any] = {}
    for violation in violations:
        tokens = path_tokens(violation.path)
        if not tokens or tokens in entities:
            holder = _container(root, tokens, final=dict)
            if isinstance(holder, dict):
                holder.setdefault("@entity", []).append(violation.message)
            continue
        parent = _container(root, tokens[:-1], final=list if isinstance(tokens[-1], int) else dict)
        _put(parent, tokens[-1], violation.message)
    return root


def _container(root: dict[str, Any], tokens: tuple[Token, ...], final: type) -> Any:
    """The dict/list at ``tokens`` under ``root``, made on the way (``final``: its type)."""
    node: Any = root
    for position, token in enumerate(tokens):
        kind = final if position == len(tokens) - 1 else _kind_for(tokens[position + 1])
        node = _child(node, token, kind)
    return node


def _kind_for(token: Token) -> type:
    return list if isinstance(token, int) else dict


def _child(node: Any, token: Token, kind: type) -> Any:
    current = _get(node, token)
    if isinstance(current, dict | list):
        if isinstance(current, list) and kind is dict:  # a list addressed by name: a record
            converted = {str(i): v for i, v in enumerate(current) if v is not None}
            _set(node, token, converted)
            return converted
        return current
    fresh: Any = kind()
    if isinstance(current, str):
        fresh = {"@entity": [current]}
    _set(node, token, fresh)
    return fresh


def _get(node: Any, token: Token) -> Any:
    if isinstance(node, list):
        return node[token] if isinstance(token, int) and token < len(node) else None
    return node.get(str(token))


def _set(node: Any, token: Token, value: Any) -> None:
    if isinstance(node, list) and isinstance(token, int):
        node.extend([None] * (token + 1 - len(node)))
        node[token] = value
    elif isinstance(node, dict):
        node[str(token)] = value


def _put(node: Any, token: Token, message: str) -> None:
    current = _get(node, token)
    if current is None:
        _set(node, token, message)
    elif isinstance(current, str):
        _set(node, token, f"{current}; {message}")
    elif isinstance(current, dict):
        current.setdefault("@entity", []).append(message)


def lua_text(value: Any) -> str:
    """``value`` written as penlight's ``pretty.write(value, "")`` writes a Lua table."""
    if isinstance(value, dict):
        parts = [f"{_lua_key(key)}={lua_text(value[key])}" for key in sorted(value)]
        return "{" + ",".join(parts) + "}"
    if isinstance(value, list):
        parts, positional = [], True
        for index, item in enumerate(value):
            if item is None:
                positional = False
                continue
            text = lua_text(item)
            parts.append(text if positional else f"[{index + 1}]={text}")
        return "{" + ",".join(parts) + "}"
    if isinstance(value, str):
        if '"' not in value:
            return '"' + value.replace("\\", "\\\\").replace("\n", "\\n") + '"'
        if "'" not in value:
            return "'" + value.replace("\\", "\\\\").replace("\n", "\\n") + "'"
        return f"[[{value}]]"
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _lua_key(key: str) -> str:
    return key if _IDENTIFIER.match(key) else f'["{key}"]'
