"""Query strings and form bodies as ordered ``name -> [values]`` (``None``: a bare flag
such as ``?debug``), decoded and encoded as nginx's ``decode_args``/``encode_args`` do."""

from __future__ import annotations

import re
from urllib.parse import quote, unquote_plus

Params = dict[str, list[str | None]]
_PLAIN = re.compile(r"[A-Za-z0-9_.~-]*\Z")  # needs no escaping either way


def _unquote(text: str) -> str:
    return unquote_plus(text) if "%" in text or "+" in text else text


def _quote(text: str) -> str:
    return text if _PLAIN.match(text) else quote(text, safe="")


def decode_args(raw: str) -> Params:
    params: Params = {}
    for item in raw.split("&"):
        if not item:
            continue
        name, eq, value = item.partition("=")
        key = _unquote(name)
        if not key:
            continue
        params.setdefault(key, []).append(_unquote(value) if eq else None)
    return params


def encode_args(params: Params) -> str:
    out: list[str] = []
    for name, values in params.items():
        key = _quote(name)
        for value in values:
            out.append(key if value is None else f"{key}={_quote(value)}")
    return "&".join(out)
