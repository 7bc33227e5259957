"""Compiled router entries: one per (route, path), with its matchers and its priority.

Kong's ``traditional_compatible`` flavor turns every path of a route into its own ranked
matcher; so do we.  An ``Entry`` knows how to test each field of a request against itself and,
for ``meshgate routes explain``, how to say why a field did not match.  The priority key
follows Kong's ``get_priority`` (kong/router/transform.lua), most significant first:

1. match weight: one point each for methods, hosts, headers, snis and paths being set;
2. hosts set and none of them a wildcard;
3. number of header names;
4. a regex path before a plain one; 5. among regex paths, higher ``regex_priority``;
6. among plain paths, the longer (normalized) prefix;

all of it after the mesh's explicit ``Route.priority`` (routes with one rank before routes
without, higher first); then, where Kong leaves the order undefined, older ``created_at``,
then ``id``, then the path's position in ``route.paths`` -- so the order is total and
deterministic.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from meshgate.proxy.router_normalize import normalize_path, normalize_regex_path

if TYPE_CHECKING:
    from meshgate import snapshot

T = TypeVar("T")

HTTP_PROTOCOLS = frozenset({"http", "https", "grpc", "grpcs"})

EXACT, SUFFIX, PREFIX = 0, 1, 2


class RouterBuildError(ValueError):
    """A route cannot be compiled (e.g. a regex Python cannot parse)."""


@dataclass(slots=True, frozen=True)
class NamePattern:
    """A host or SNI matcher: exact name, ``*.suffix`` or ``prefix.*``, with an optional port."""

    kind: int
    name: str  # the exact name, the suffix (".example.com") or the prefix ("example.")
    port: int | None
    text: str  # as configured

    def matches(self, hostname: str, port: int | None) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.kind == EXACT:
            return hostname == self.name
        if self.kind == SUFFIX:
            return hostname.endswith(self.name)
        return hostname.startswith(self.name)


def compile_name(text: str, *, with_port: bool) -> NamePattern:
    name = text.strip().lower()
    port: int | None = None
    if with_port and not name.endswith("]"):
        colon = name.rfind(":")
        if colon != -1 and name[colon + 1 :].isdigit():
            port = int(name[colon + 1 :])
            name = name[:colon]
    if name.endswith(".") and len(name) > 1:
        name = name[:-1]
    if name.startswith("*"):
        return NamePattern(SUFFIX, name[1:], port, text)
    if name.endswith("*"):
        return NamePattern(PREFIX, name[:-1], port, text)
    return NamePattern(EXACT, name, port, text)


@dataclass(slots=True, frozen=True)
class HeaderMatcher:
    """One header name and the values it accepts (any of them): exact, case-insensitive,
    or ``~*regex`` (case-insensitive search)."""

    name: str
    exact: frozenset[str]
    regexes: tuple[re.Pattern[str], ...]
    text: tuple[str, ...]

    def matches(self, value: str) -> bool:
        lowered = value.lower()
        pieces = [lowered]
        if "," in lowered:
            # the engine joins repeated header lines with ", "; Kong tests each line alone
            pieces.extend(piece.strip() for piece in lowered.split(","))
        if self.exact and any(piece in self.exact for piece in pieces):
            return True
        return any(regex.search(piece) for regex in self.regexes for piece in pieces)


def compile_header(name: str, values: tuple[str, ...], route_id: str) -> HeaderMatcher:
    exact: set[str] = set()
    regexes: list[re.Pattern[str]] = []
    for value in values:
        if value.startswith("~*"):
            try:
                regexes.append(re.compile(value[2:], re.IGNORECASE))
            except re.error as exc:
                raise RouterBuildError(
                    f"route {route_id}: header {name} regex {value!r}: {exc}"
                ) from exc
        else:
            exact.add(value.lower())
    return HeaderMatcher(name.lower(), frozenset(exact), tuple(regexes), values)


@dataclass(slots=True, eq=False)
class Entry(Generic[T]):
    """One path of one route (or the route itself when it has no paths), compiled."""

    route: snapshot.Route
    target: T
    path: str | None  # as configured: "/svc" or "~/re"
    path_index: int
    prefix: str | None  # normalized plain prefix
    regex: re.Pattern[str] | None
    methods: frozenset[str] | None
    hosts: tuple[NamePattern, ...]
    headers: tuple[HeaderMatcher, ...]
    snis: tuple[NamePattern, ...]
    sort_key: tuple[int | str, ...]
    # orders entries like ``sort_key`` (smaller: tried first) but with gaps, so that an entry
    # can be inserted without renumbering the others; set once, before the entry is shared
    rank: int = 0
    regex_literal: str = ""  # text every path the regex matches starts with ("" if unknown)

    def clone(self, route: snapshot.Route, target: T, rank: int) -> Entry[T]:
        """This entry for an equal ``route`` (or another target), keeping what was compiled."""
        return Entry(
            route,
            target,
            self.path,
            self.path_index,
            self.prefix,
            self.regex,
            self.methods,
            self.hosts,
            self.headers,
            self.snis,
            self.sort_key,
            rank,
            self.regex_literal,
        )

    def host_matches(self, hostname: str, port: int | None) -> bool:
        return not self.hosts or any(h.matches(hostname, port) for h in self.hosts)

    def path_matches(self, npath: str) -> bool:
        if self.prefix is not None:
            return npath.startswith(self.prefix)
        if self.regex is not None:
            return self.regex.search(npath) is not None
        return True

    def rest_matches(self, method: str, headers: Mapping[str, str] | None, sni: str | None) -> bool:
        """Everything but host and path: methods, headers, SNI."""
        if self.methods is not None and method not in self.methods:
            return False
        if self.headers:
            if headers is None:
                return False
            for matcher in self.headers:
                value = headers.get(matcher.name)
                if value is None or not matcher.matches(value):
                    return False
        return self.sni_matches(sni)

    def sni_matches(self, sni: str | None) -> bool:
        # Kong: SNI rules apply only to TLS requests; ``sni=None`` means plain HTTP.
        if not self.snis or sni is None:
            return True
        name = sni.lower().rstrip(".")
        return any(s.matches(name, None) for s in self.snis)

    def failures(
        self,
        method: str,
        hostname: str,
        port: int | None,
        npath: str,
        headers: Mapping[str, str] | None,
        sni: str | None,
    ) -> list[str]:
        """Why this entry does not match the request (empty: it matches)."""
        reasons: list[str] = []
        if self.methods is not None and method not in self.methods:
            reasons.append(f"method {method} not in {', '.join(self.route.methods)}")
        if not self.host_matches(hostname, port):
            shown = hostname if port is None else f"{hostname}:{port}"
            reasons.append(f"host {shown or '(none)'} not in {', '.join(self.route.hosts)}")
        if not self.path_matches(npath):
            reasons.append(f"path {npath} does not match {self.path}")
        for matcher in self.headers:
            value = None if headers is None else headers.get(matcher.name)
            if value is None:
                reasons.append(f"header {matcher.name} missing")
            elif not matcher.matches(value):
                reasons.append(f"header {matcher.name}: {value} not in {', '.join(matcher.text)}")
        if not self.sni_matches(sni):
            reasons.append(f"sni {sni or '(none)'} not in {', '.join(self.route.snis)}")
        return reasons

    def priority_text(self) -> str:
        weight, plain_hosts, header_count, is_regex, regex_priority, length = (
            -int(part) for part in self.sort_key[2:8]
        )
        text = f"weight {weight}, plain hosts {plain_hosts}, headers {header_count}, "
        if self.route.priority is not None:
            text = f"priority {self.route.priority}, " + text
        if self.path is None:
            return text + "no path"
        if is_regex:
            return text + f"regex priority {regex_priority}"
        return text + f"path length {length}"


_LITERAL_CHARS = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/-_~%!,;:=@&'<># "
)


def regex_literal_prefix(pattern: str) -> str:
    """The literal text every match of ``^pattern`` starts with, conservatively ("" when in
    doubt): it lets the index skip regexes whose literal start the path does not have."""
    if "|" in pattern:
        return ""
    literal: list[str] = []
    position = 0
    while position < len(pattern):
        char = pattern[position]
        if char in _LITERAL_CHARS:
            width = 1
        elif char == "\\" and position + 1 < len(pattern) and not pattern[position + 1].isalnum():
            char, width = pattern[position + 1], 2
        else:
            break
        following = pattern[position + width : position + width + 1]
        if following and following in "?*+{":
            break  # this character is optional or repeated
        literal.append(char)
        position += width
    return "".join(literal)


def _compile_regex(path: str, route_id: str) -> re.Pattern[str]:
    # Kong anchors with a leading "^" and searches (so "~/a|/b" is "^/a" or "/b" anywhere).
    try:
        return re.compile("^" + normalize_regex_path(path[1:]))
    except re.error as exc:
        raise RouterBuildError(f"route {route_id}: path {path!r}: {exc}") from exc


def compile_entries(route: snapshot.Route, target: T) -> list[Entry[T]]:
    """The entries of one HTTP route, unranked; [] if its protocols are not HTTP ones."""
    if not HTTP_PROTOCOLS.intersection(route.protocols):
        return []
    # (the emptiness tests spare a generator per field: a full build runs this per route)
    methods = frozenset(m.upper() for m in route.methods) if route.methods else None
    hosts = tuple([compile_name(h, with_port=True) for h in route.hosts]) if route.hosts else ()
    headers = (
        tuple([compile_header(n, v, route.id) for n, v in sorted(route.headers.items())])
        if route.headers
        else ()
    )
    snis = tuple([compile_name(s, with_port=False) for s in route.snis]) if route.snis else ()
    weight = (
        bool(route.methods)
        + bool(route.hosts)
        + bool(route.headers)
        + bool(route.snis)
        + bool(route.paths)
    )
    plain_hosts = 1 if route.hosts and all("*" not in h for h in route.hosts) else 0
    paths: list[str | None] = list(route.paths) if route.paths else [None]
    entries: list[Entry[T]] = []
    for index, path in enumerate(paths):
        prefix: str | None = None
        regex: re.Pattern[str] | None = None
        literal = ""
        if path is not None and path.startswith("~"):
            regex = _compile_regex(path, route.id)
            literal = regex_literal_prefix(regex.pattern[1:])
        elif path is not None:
            prefix = normalize_path(path)
        is_regex = regex is not None
        key: tuple[int | str, ...] = (
            0 if route.priority is not None else 1,  # an explicit priority outranks all else
            -(route.priority or 0),
            -weight,
            -plain_hosts,
            -len(headers),
            -int(is_regex),
            -route.regex_priority if is_regex else 0,
            -len(prefix) if prefix is not None else 0,
            route.created_at,
            route.id,
            index,
        )
        entries.append(
            Entry(
                route,
                target,
                path,
                index,
                prefix,
                regex,
                methods,
                hosts,
                headers,
                snis,
                key,
                regex_literal=literal,
            )
        )
    return entries
