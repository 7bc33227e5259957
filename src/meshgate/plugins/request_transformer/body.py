"""Body transformations of request-transformer: JSON objects and url-encoded forms.

Kong's rules: ``remove``/``rename``/``replace`` only act on a non-empty body, ``add`` sets
a parameter that is absent (in JSON: absent or ``false``), ``append`` turns a present string
into a list ``[old, new]``, extends a list, or else sets ``[new]``.  Values are strings.
A body that is not valid JSON is refused with 400 (meshgate's choice: Kong forwards it
untouched); a JSON body that is not an object is forwarded untouched.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from .params import decode_args, encode_args
from .template import Env, Template

Ops = Sequence[tuple[str, Template | None]]  # name, value/new name (None for remove)


class BadBody(ValueError):
    """The body cannot be parsed as its Content-Type says."""


def _render(value: Template | None, env: Env) -> str:
    assert value is not None
    return value.render(env)


def _append(old: Any, value: str) -> Any:
    if isinstance(old, str):
        return [old, value]
    if isinstance(old, list):
        old.append(value)
        return old
    return [value]


def transform_json(raw: bytes, env: Env, ops: tuple[Ops, Ops, Ops, Ops, Ops]) -> bytes | None:
    """The new body, or None when nothing changed."""
    remove, rename, replace, add, append = ops
    if raw.strip():
        try:
            params = json.loads(raw)
        except (ValueError, RecursionError):
            raise BadBody("request body is not valid JSON") from None
        if not isinstance(params, dict):
            return None
        non_empty = True
    else:
        params, non_empty = {}, False
    changed = False
    if non_empty:
        for name, _ in remove:
            params.pop(name, None)
            changed = True
        for old, new in rename:
            new_name = _render(new, env)
            if old != new_name and old in params and params[old] is not False:
                params[new_name] = params.pop(old)
                changed = True
        for name, value in replace:
            if name in params and params[name] is not False:
                params[name] = _render(value, env)
                changed = True
    for name, value in add:
        if name not in params or params[name] is False:
            params[name] = _render(value, env)
            changed = True
    for name, value in append:
        params[name] = _append(params.get(name), _render(value, env))
        changed = True
    if not changed:
        return None
    return json.dumps(params, separators=(",", ":"), ensure_ascii=False).encode()


def transform_form(raw: bytes, env: Env, ops: tuple[Ops, Ops, Ops, Ops, Ops]) -> bytes | None:
    remove, rename, replace, add, append = ops
    try:
        params = decode_args(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise BadBody("request body is not valid UTF-8 form data") from None
    non_empty = bool(raw)
    changed = False
    if non_empty:
        for name, _ in remove:
            params.pop(name, None)
            changed = True
        for old, new in rename:
            new_name = _render(new, env)
            if old != new_name and old in params:
                params[new_name] = params.pop(old)
                changed = True
        for name, value in replace:
            if name in params:
                params[name] = [_render(value, env)]
                changed = True
    for name, value in add:
        if name not in params:
            params[name] = [_render(value, env)]
            changed = True
    for name, value in append:
        params.setdefault(name, []).append(_render(value, env))
        changed = True
    return encode_args(params).encode() if changed else None
