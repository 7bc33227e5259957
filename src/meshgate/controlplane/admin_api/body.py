"""Request bodies as Kong reads them: JSON, ``application/x-www-form-urlencoded`` and
``multipart/form-data``, with Kong's form conventions (``hosts[]=a``, ``hosts=a&hosts=b``,
``config.minute=5``, ``headers.x-foo[]=bar``).

The size limit is enforced by the app's middleware while the body streams in; here a
malformed body becomes a 400, an unsupported content type a 415 — never a 500.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl

from starlette.datastructures import UploadFile
from starlette.requests import Request

from meshgate.controlplane.admin_api.errors import AdminError, message_error

_SEGMENT = re.compile(r"([^\[\]]*)((?:\[[^\[\]]*\])*)$")
_MAX_JSON_DEPTH = 64


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(raw: bytes) -> Any:
    """JSON without NaN/Infinity (they could not be sent back) and without NUL characters
    (PostgreSQL cannot store them); 400 when malformed."""
    try:
        data = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise message_error(400, "Cannot parse JSON body") from None
    if _depth(data) > _MAX_JSON_DEPTH:
        raise message_error(400, "the request body is nested too deeply")
    reject_nul(data)
    return data


def reject_nul(value: Any) -> None:
    """400 when any string (key or value) holds a NUL character."""
    if isinstance(value, str):
        if "\x00" in value:
            raise message_error(400, "NUL characters are not allowed")
    elif isinstance(value, dict):
        for key, item in value.items():
            reject_nul(key)
            reject_nul(item)
    elif isinstance(value, list):
        for item in value:
            reject_nul(item)


async def form_pairs(request: Request) -> list[tuple[str, str]]:
    """The fields of a multipart body, files read as UTF-8 text."""
    try:
        async with request.form() as form:
            pairs: list[tuple[str, str]] = []
            for key, value in form.multi_items():
                if isinstance(value, UploadFile):
                    pairs.append((key, (await value.read()).decode("utf-8")))
                else:
                    pairs.append((key, value))
            return _without_nul(pairs)
    except AdminError:
        raise
    except Exception:  # python-multipart raises several types for malformed bodies
        raise message_error(400, "Cannot parse multipart body") from None


def urlencoded_pairs(raw: bytes) -> list[tuple[str, str]]:
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        raise message_error(400, "Cannot parse form body") from None
    return _without_nul(pairs)


def _without_nul(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    if any("\x00" in key or "\x00" in value for key, value in pairs):
        raise message_error(400, "NUL characters are not allowed")
    return pairs


async def read_entity_body(request: Request, array_fields: frozenset[str]) -> dict[str, Any]:
    """The body of an entity write as a dict; ``array_fields`` turn a lone form value into a list."""
    kind = media_type(request)
    if kind == "multipart/form-data":
        return form_to_dict(await form_pairs(request), array_fields)
    raw = await request.body()
    if not raw.strip():
        return {}
    if kind in ("", "application/json") or kind.endswith("+json"):
        data = parse_json(raw)
        if not isinstance(data, dict):
            raise message_error(400, "the request body must be a JSON object")
        return data
    if kind == "application/x-www-form-urlencoded":
        return form_to_dict(urlencoded_pairs(raw), array_fields)
    raise message_error(415, f"Unsupported Content-Type '{kind}'")


def _depth(value: Any, level: int = 0) -> int:
    if level > _MAX_JSON_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


def form_to_dict(pairs: Iterable[tuple[str, str]], array_fields: frozenset[str]) -> dict[str, Any]:
    """Kong's form keys to nested data: ``a.b=1`` → ``{"a": {"b": "1"}}``, ``a[]=x`` and
    repeated ``a=x`` → lists, ``a[2]=x`` → list in index order."""
    result: dict[str, Any] = {}
    indexed: dict[tuple[str, ...], dict[int, str]] = {}
    for key, value in pairs:
        path = _key_path(key)
        if path is None:
            raise message_error(400, f"invalid form field name '{key}'")
        names, suffix = path
        if suffix is None:
            _assign(result, names, value, append=False)
        elif suffix == "":
            _assign(result, names, value, append=True)
        elif suffix.isdigit():
            indexed.setdefault(names, {})[int(suffix)] = value
        else:
            _assign(result, (*names, suffix), value, append=False)
    for names, items in indexed.items():
        _assign(result, names, [items[i] for i in sorted(items)], append=False, whole=True)
    for name in array_fields:
        if isinstance(result.get(name), str):
            result[name] = [result[name]] if result[name] != "" else []
    return result


def _key_path(key: str) -> tuple[tuple[str, ...], str | None] | None:
    names: list[str] = []
    suffix: str | None = None
    for segment in key.split("."):
        match = _SEGMENT.match(segment)
        if match is None or not match.group(1):
            return None
        names.append(match.group(1))
        brackets = re.findall(r"\[([^\[\]]*)\]", match.group(2))
        if len(brackets) > 1:
            return None
        suffix = brackets[0] if brackets else None
        if suffix is not None and suffix not in ("",) and not suffix.isdigit():
            names.append(suffix)
            suffix = None
    return tuple(names), suffix


def _assign(
    target: dict[str, Any], names: tuple[str, ...], value: Any, *, append: bool, whole: bool = False
) -> None:
    holder = target
    for name in names[:-1]:
        child = holder.get(name)
        if not isinstance(child, dict):
            child = {}
            holder[name] = child
        holder = child
    last = names[-1]
    current = holder.get(last)
    if whole:
        holder[last] = value
    elif append:
        holder[last] = [*current, value] if isinstance(current, list) else [value]
    elif current is None:
        holder[last] = value
    elif isinstance(current, list):
        current.append(value)
    else:
        holder[last] = [current, value]
