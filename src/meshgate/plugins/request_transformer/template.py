"""The ``$(...)`` value templates of request-transformer, compiled once per snapshot.

Kong evaluates the inside of ``$(...)`` as a (sandboxed) Lua expression over ``headers``,
``query_params``, ``uri_captures`` and ``shared``.  meshgate accepts the forms people use:
``ns.name``, ``ns["name"]``, ``ns['name']``, ``ns[1]``, quoted string and number literals,
joined with ``or`` (the first value that is present wins), e.g.
``$(uri_captures["user-id"] or query_params.user or "unknown")``.  Anything else is refused
when the config is validated.  A missing value renders as the empty string; a repeated
header or query argument renders its values joined with ``, ``.  Header lookups are
case-insensitive and ``_`` also matches ``-`` (as nginx's header table does).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

NAMESPACES = frozenset({"headers", "query_params", "uri_captures", "shared"})
_PATH = re.compile(
    r"""\s*(?P<ns>[A-Za-z_][A-Za-z0-9_]*)\s*
    (?:\.\s*(?P<attr>[A-Za-z_][A-Za-z0-9_]*)
      |\[\s*(?:"(?P<dq>[^"\\]*)"|'(?P<sq>[^'\\]*)'|(?P<num>\d+))\s*\])\s*\Z""",
    re.VERBOSE,
)
_LITERAL = re.compile(
    r"""\s*(?:"(?P<dq>[^"\\]*)"|'(?P<sq>[^'\\]*)'|(?P<num>-?\d+(?:\.\d+)?))\s*\Z"""
)


class TemplateError(ValueError):
    """A template the plugin cannot evaluate."""


class Env:
    """What templates read: the request as it was before this plugin changed it."""

    __slots__ = ("_headers", "_query", "_raw_query", "captures", "shared")

    def __init__(
        self,
        headers: Mapping[str, Sequence[str]],
        raw_query: str,
        captures: Mapping[str, str],
        shared: Mapping[str, Any],
    ) -> None:
        self._headers = headers
        self._raw_query = raw_query
        self._query: Mapping[str, Sequence[str | None]] | None = None
        self.captures = captures
        self.shared = shared

    def header(self, name: str) -> str | None:
        values = self._headers.get(name)
        if values is None and "_" in name:
            values = self._headers.get(name.replace("_", "-"))
        return ", ".join(values) if values else None

    def query(self, name: str) -> str | None:
        query = self._query
        if query is None:
            from .params import decode_args

            query = self._query = decode_args(self._raw_query)
        values = query.get(name)
        if not values:
            return None
        return ", ".join("" if v is None else v for v in values)


Lookup = Callable[[Env], str | None]
_header_keys: set[str] = set()  # filled while compiling one template (single-threaded)


def _lookup(ns: str, key: str) -> Lookup:
    if ns == "headers":
        lowered = key.lower()
        _header_keys.update({lowered, lowered.replace("_", "-")})
        return lambda env: env.header(lowered)
    if ns == "query_params":
        return lambda env: env.query(key)
    if ns == "uri_captures":
        return lambda env: env.captures.get(key)

    def shared(env: Env) -> str | None:
        value = env.shared.get(key)
        return None if value is None else str(value)

    return shared


def _split_or(expr: str) -> list[str]:
    """``a or b or "c"`` → its alternatives (``or`` inside quotes or brackets is text)."""
    parts: list[str] = []
    depth = 0
    quote = ""
    start = 0
    i = 0
    while i < len(expr):
        c = expr[i]
        if quote:
            if c == quote:
                quote = ""
        elif c in "\"'":
            quote = c
        elif c == "[":
            depth += 1
        elif c == "]":
            depth -= 1
        elif (
            depth == 0
            and expr.startswith("or", i)
            and (i == 0 or not (expr[i - 1].isalnum() or expr[i - 1] == "_"))
            and (i + 2 == len(expr) or not (expr[i + 2].isalnum() or expr[i + 2] == "_"))
        ):
            parts.append(expr[start:i])
            start = i + 2
            i += 2
            continue
        i += 1
    parts.append(expr[start:])
    return parts


def _alternative(text: str) -> Lookup:
    literal = _LITERAL.match(text)
    if literal:
        value = literal.group("dq")
        if value is None:
            value = literal.group("sq")
        if value is None:
            value = literal.group("num")
        constant: str = value
        return lambda env: constant
    path = _PATH.match(text)
    if path is None:
        raise TemplateError(f"unsupported expression '{text.strip()}'")
    ns = path.group("ns")
    if ns not in NAMESPACES:
        raise TemplateError(
            f"unknown variable '{ns}' (use headers, query_params, uri_captures or shared)"
        )
    key = next(path.group(g) for g in ("attr", "dq", "sq", "num") if path.group(g) is not None)
    return _lookup(ns, key)


def _expression(expr: str) -> Lookup:
    alternatives = [_alternative(part) for part in _split_or(expr)]
    if len(alternatives) == 1:
        return alternatives[0]

    def first_present(env: Env) -> str | None:
        for alt in alternatives:
            value = alt(env)
            if value is not None:
                return value
        return None

    return first_present


@dataclass(frozen=True, slots=True)
class Template:
    """A compiled value: literal text pieces and lookups, or one constant."""

    source: str
    pieces: tuple[str | Lookup, ...]
    uses: frozenset[str]  # the namespaces it reads
    header_keys: frozenset[str] = frozenset()  # the (lower-case) header names it reads

    @property
    def constant(self) -> str | None:
        if len(self.pieces) == 1 and isinstance(self.pieces[0], str):
            return self.pieces[0]
        return None if self.pieces else ""

    def render(self, env: Env) -> str:
        out: list[str] = []
        for piece in self.pieces:
            if isinstance(piece, str):
                out.append(piece)
            else:
                out.append(piece(env) or "")
        return "".join(out)


def _close(source: str, start: int) -> int:
    """Index of the ``)`` closing the ``$(`` whose inside begins at ``start``."""
    depth = 1
    quote = ""
    for i in range(start, len(source)):
        c = source[i]
        if quote:
            if c == quote:
                quote = ""
        elif c in "\"'":
            quote = c
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i
    raise TemplateError("unclosed '$('")


def compile_template(source: str) -> Template:
    _header_keys.clear()
    pieces: list[str | Lookup] = []
    uses: set[str] = set()
    pos = 0
    while True:
        found = source.find("$(", pos)
        if found < 0:
            break
        if found > pos:
            pieces.append(source[pos:found])
        end = _close(source, found + 2)
        expr = source[found + 2 : end]
        if not expr.strip():
            raise TemplateError("empty expression '$()'")
        pieces.append(_expression(expr))
        uses.update(ns for ns in NAMESPACES if ns in expr)
        pos = end + 1
    if pos < len(source):
        pieces.append(source[pos:])
    return Template(source, tuple(pieces), frozenset(uses), frozenset(_header_keys))
