"""Kong's Admin API errors: status codes, error codes and the ``{code, name, message, fields}`` body.

Every failure a handler meets is raised as an :class:`AdminError`; the app turns it into the
JSON body Kong sends.  Field errors are nested the way Kong nests them: records as objects,
array elements as arrays (``{"paths": [null, "bad path"]}``), entity-level rules under
``"@entity"``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

Loc = tuple[str | int, ...]

# Kong's DAO error codes (kong/db/errors.lua) and the names its bodies carry.
INVALID_PRIMARY_KEY = 1
SCHEMA_VIOLATION = 2
PRIMARY_KEY_VIOLATION = 3
FOREIGN_KEY_VIOLATION = 4
UNIQUE_VIOLATION = 5
NOT_FOUND = 6
INVALID_OFFSET = 7
DATABASE_ERROR = 8
INVALID_SIZE = 9
INVALID_OPTIONS = 11
OPERATION_UNSUPPORTED = 12
DECLARATIVE_CONFIG = 14

CODE_NAMES = {
    INVALID_PRIMARY_KEY: "invalid primary key",
    SCHEMA_VIOLATION: "schema violation",
    PRIMARY_KEY_VIOLATION: "primary key violation",
    FOREIGN_KEY_VIOLATION: "foreign key violation",
    UNIQUE_VIOLATION: "unique constraint violation",
    NOT_FOUND: "not found",
    INVALID_OFFSET: "invalid offset",
    DATABASE_ERROR: "database error",
    INVALID_SIZE: "invalid size",
    INVALID_OPTIONS: "invalid options",
    OPERATION_UNSUPPORTED: "operation unsupported",
    DECLARATIVE_CONFIG: "invalid declarative configuration",
}


class AdminError(Exception):
    """An HTTP error answer: ``status`` and the JSON ``body`` to send."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None):
        self.status = status
        self.body = body
        self.headers = headers or {}
        super().__init__(str(body.get("message", status)))


def dao_error(status: int, code: int, message: str, fields: Any = None, **extra: Any) -> AdminError:
    body: dict[str, Any] = {"code": code, "name": CODE_NAMES[code], "message": message}
    if fields is not None:
        body["fields"] = fields
    body.update(extra)
    return AdminError(status, body)


def message_error(status: int, message: str) -> AdminError:
    """A non-DAO error: Kong sends just ``{"message": ...}`` (e.g. 401, 405, 413, 415)."""
    return AdminError(status, {"message": message})


def loc_text(loc: Loc) -> str:
    """``("paths", 0)`` → ``paths[0]`` (the path syntax meshgate uses everywhere)."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text = f"{text}.{part}" if text else part
    return text


def nest_fields(violations: Iterable[tuple[Loc, str]]) -> dict[str, Any]:
    """Kong's nested ``fields``: records as objects, array items as arrays, rules in ``@entity``."""
    root: dict[str, Any] = {}
    for loc, message in violations:
        _place(root, loc, message)
    return root


def _place(container: dict[str, Any] | list[Any], loc: Loc, message: str) -> None:
    if not loc:
        if isinstance(container, dict):
            container.setdefault("@entity", []).append(message)
        return
    head, rest = loc[0], loc[1:]
    if isinstance(container, list):
        if not isinstance(head, int):
            return
        while len(container) <= head:
            container.append(None)
        key: str | int = head
        current = container[head]
    else:
        key = str(head)
        current = container.get(key)
    if not rest:
        if current is None:
            _set(container, key, message)
        elif isinstance(current, dict):
            current.setdefault("@entity", []).append(message)
        elif isinstance(current, str):
            _set(container, key, f"{current}; {message}")
        return
    if not isinstance(current, dict | list):
        child: dict[str, Any] | list[Any] = [] if isinstance(rest[0], int) else {}
        if isinstance(current, str):
            child = {"@entity": [current]}
        _set(container, key, child)
        current = child
    if isinstance(current, list) and not isinstance(rest[0], int):
        converted = {str(i): v for i, v in enumerate(current) if v is not None}
        _set(container, key, converted)
        current = converted
    _place(current, rest, message)


def _set(container: dict[str, Any] | list[Any], key: str | int, value: Any) -> None:
    if isinstance(container, list) and isinstance(key, int):
        container[key] = value
    elif isinstance(container, dict):
        container[str(key)] = value


def schema_violation(violations: Sequence[tuple[Loc, str]]) -> AdminError:
    """400, code 2, with every violation in ``message`` and nested in ``fields``."""
    texts = [f"{loc_text(loc)}: {msg}" if loc else msg for loc, msg in violations]
    count = len(texts)
    prefix = "schema violation" if count == 1 else f"{count} schema violations"
    return dao_error(
        400, SCHEMA_VIOLATION, f"{prefix} ({'; '.join(texts)})", nest_fields(violations)
    )


def unique_violation(fields: dict[str, Any]) -> AdminError:
    shown = ", ".join(f"{key}={_lua_value(value)}" for key, value in fields.items())
    return dao_error(409, UNIQUE_VIOLATION, f"UNIQUE violation detected on '{{{shown}}}'", fields)


def primary_key_violation(entity_id: str) -> AdminError:
    return dao_error(
        400,
        PRIMARY_KEY_VIOLATION,
        f"primary key violation on key '{{id=\"{entity_id}\"}}'",
        {"id": entity_id},
    )


def foreign_key_violation(field: str, target_type: str, value: str) -> AdminError:
    return dao_error(
        400,
        FOREIGN_KEY_VIOLATION,
        f"the foreign key '{{id=\"{value}\"}}' does not reference an existing "
        f"'{target_type}' entity.",
        {field: {"id": value}},
    )


def referenced_by(child_type: str, parent_type: str) -> AdminError:
    return dao_error(
        400,
        FOREIGN_KEY_VIOLATION,
        f"an existing '{child_type}' entity references this '{parent_type}' entity",
        {"@referenced_by": child_type},
    )


def not_found(message: str = "Not found") -> AdminError:
    return dao_error(404, NOT_FOUND, message)


def read_only(reason: str) -> AdminError:
    return dao_error(405, OPERATION_UNSUPPORTED, f"this node is read-only: {reason}")


def bad_request(message: str) -> AdminError:
    return message_error(400, message)


def _lua_value(value: Any) -> str:
    if isinstance(value, dict):
        inner = ",".join(f"{k}={_lua_value(v)}" for k, v in value.items())
        return "{" + inner + "}"
    if value is None:
        return "null"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)
