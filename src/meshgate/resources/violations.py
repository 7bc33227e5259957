"""Pydantic validation errors as meshgate ``Violation``s, each with its full field path."""

from __future__ import annotations

from pydantic import ValidationError

from meshgate.errors import Violation
from meshgate.resources.kong_common import EntityViolations, Loc


def join_path(prefix: str, loc: Loc) -> str:
    """``services[0]`` + ``("paths", 0)`` → ``services[0].paths[0]``."""
    text = prefix
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part == "[key]":
            continue  # pydantic's marker for "the key of this dict entry"
        else:
            text = f"{text}.{part}" if text else str(part)
    return text


_MESSAGE_BY_TYPE = {"extra_forbidden": "unknown field", "missing": "required field missing"}


def violations_from(error: ValidationError, prefix: str) -> list[Violation]:
    """Every error of a pydantic ``ValidationError`` as a violation with its full path."""
    found: list[Violation] = []
    for detail in error.errors():
        loc = tuple(detail["loc"])
        cause = (detail.get("ctx") or {}).get("error")
        if isinstance(cause, EntityViolations):
            found += [Violation(join_path(prefix, loc + sub), msg) for sub, msg in cause.items]
            continue
        message = _MESSAGE_BY_TYPE.get(detail["type"], detail["msg"])
        message = message.removeprefix("Value error, ")
        found.append(Violation(join_path(prefix, loc), message))
    return found
