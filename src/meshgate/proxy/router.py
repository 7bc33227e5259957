"""The HTTP router: Kong ``traditional_compatible`` route matching, compiled once per snapshot.

``Router.build`` ranks every (route, path) entry (``router_entries`` has the order) and
indexes them (``router_index``) so that a lookup only looks at entries that can match the
request's host, path and headers -- not at every route.  The result is always the entry a
scan of the whole ranked list would pick (``_naive_match``; the property tests hold both to it).

``Router.build(entries, previous=router)`` costs what changed (``router_build``): entries of
unchanged routes are taken over from ``previous``, new ones ranked into the gaps between
them, and the index updated copy-on-write; ``previous`` is only read and may keep serving.

``upstream_path`` joins a service path and the (stripped) request path as Kong does.
Pure logic: no I/O, no asyncio.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from meshgate.proxy.router_build import RouteSet, build_route_set
from meshgate.proxy.router_entries import Entry, RouterBuildError
from meshgate.proxy.router_index import NO_RANK
from meshgate.proxy.router_normalize import normalize_path, sanitize_postfix, split_host_port

if TYPE_CHECKING:
    from meshgate import snapshot

__all__ = ["Explanation", "RouteMatch", "Router", "RouterBuildError", "upstream_path"]

T = TypeVar("T")
MEMO_SIZE = 1024  # requests remembered by ``match_head``; full, it starts over
_METHODS = {m.encode(): m for m in ("GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH")}
_UNSEEN: Any = object()


@dataclass(slots=True)
class RouteMatch(Generic[T]):
    """The route chosen for a request and what routing learnt on the way."""

    route: snapshot.Route
    target: T
    matched_path: str | None  # the route path ("/svc" or "~regex") that matched
    stripped_path: str  # request path after strip_path, always starting with "/"
    uri_captures: dict[str, str]  # named and numbered ("1", "2", ...) regex captures
    normalized_path: str = "/"  # the whole request path, normalized
    postfix: str = ""  # Kong's request_postfix: what follows the stripped part (or path[1:])
    # what the proxy derived from this match for one service (``http.dispatch``): a match is
    # remembered per request head, so this is worked out once, not per request
    upstream_plan: Any = field(default=None, compare=False, repr=False)


@dataclass(slots=True)
class Explanation:
    """One route entry, in priority order, and whether/why it matches a request."""

    route: snapshot.Route
    path: str | None  # the route path this entry stands for (None: route has no paths)
    rank: int | None  # position in the priority order; None for routes the router ignores
    priority: str
    matched: bool
    selected: bool
    reason: str


class Router(Generic[T]):
    """Routes compiled for one snapshot; immutable once built."""

    __slots__ = ("_entries", "_ignored", "_index", "_memo", "_route_set", "uses_headers")

    def __init__(self, route_set: RouteSet[T]) -> None:
        self._route_set = route_set  # what the next build starts from
        self._entries = route_set.entries  # every entry, in rank order
        self._ignored = route_set.ignored  # routes with no HTTP protocol
        self._index = route_set.index
        self.uses_headers = route_set.header_entries > 0
        self._memo: dict[tuple[bytes, bytes | None, bytes, str | None], RouteMatch[T] | None]
        self._memo = {}

    @classmethod
    def build(
        cls, entries: Sequence[tuple[snapshot.Route, T]], previous: Router[T] | None = None
    ) -> Router[T]:
        """Compile and rank routes; raises ``RouterBuildError`` for a route it cannot compile.

        With ``previous`` (which is only read), what it compiled for an unchanged (route,
        target) pair is reused, and so is its index where nothing changed."""
        return cls(build_route_set(entries, None if previous is None else previous._route_set))

    @classmethod
    def build_per_listener(
        cls,
        entries: Sequence[tuple[snapshot.Route, T]],
        previous: tuple[Router[T], dict[str, Router[T]] | None] | None = None,
    ) -> tuple[Router[T], dict[str, Router[T]] | None]:
        """Routers for routes scoped to listeners (``Route.listeners``): one for every listener
        some route names (its routes plus the unscoped ones), and the router of the unscoped
        routes alone, for every other listener.  None instead of the dict when no route is
        scoped: then the one router holds everything.  ``previous``: what this returned for
        the previous snapshot, to build from (see ``build``)."""
        old_default, old_per_listener = previous if previous is not None else (None, None)
        unscoped = [item for item in entries if not item[0].listeners]
        if len(unscoped) == len(entries):
            return cls.build(entries, old_default), None
        names = sorted({name for route, _ in entries for name in route.listeners})
        per_listener = {
            name: cls.build(
                [item for item in entries if name in item[0].listeners] + unscoped,
                (old_per_listener or {}).get(name, old_default),
            )
            for name in names
        }
        return cls.build(unscoped, old_default), per_listener

    def __len__(self) -> int:
        return len(self._entries)

    def match(
        self,
        method: str,
        host: str,
        path: str,
        headers: Mapping[str, str] | None = None,
        sni: str | None = None,
    ) -> RouteMatch[T] | None:
        """The route for a request, or None.  ``sni=None`` means plain HTTP (SNI rules are
        skipped, as Kong does); pass ``sni=""`` for TLS without SNI."""
        if not path.startswith("/"):
            return None
        npath = normalize_path(path)
        method = method.upper()
        hostname, port = split_host_port(host) if host else ("", None)
        best: Entry[T] | None = None
        bound = NO_RANK
        for index in self._index.indexes_for(hostname, port):
            entry = index.best(npath, method, hostname, port, headers, sni, bound)
            if entry is not None:
                best, bound = entry, entry.rank
        return None if best is None else _route_match(best, npath)

    def match_head(
        self,
        method: bytes,
        host: bytes | None,
        raw_path: bytes,
        headers: Callable[[], Mapping[str, str]],
        sni: str | None = None,
    ) -> RouteMatch[T] | None:
        """``match`` for a request head as the client sent it (``headers`` called only when
        some route matches on headers).  Without header rules the answer depends on these
        four values alone, so it is remembered (up to ``MEMO_SIZE`` heads, as Kong's router
        caches its matches); a new snapshot builds a new router, so it never goes stale."""
        if self.uses_headers:
            return self._match_head(method, host, raw_path, headers(), sni)
        key = (method, host, raw_path, sni)
        found = self._memo.get(key, _UNSEEN)
        if found is _UNSEEN:
            found = self._match_head(method, host, raw_path, None, sni)
            if len(self._memo) >= MEMO_SIZE:
                self._memo.clear()
            self._memo[key] = found
        return found  # type: ignore[no-any-return]

    def _match_head(
        self,
        method: bytes,
        host: bytes | None,
        raw_path: bytes,
        headers: Mapping[str, str] | None,
        sni: str | None,
    ) -> RouteMatch[T] | None:
        return self.match(
            _METHODS.get(method) or method.decode("latin-1"),
            host.decode("latin-1").lower() if host else "",
            raw_path.decode("utf-8", "surrogateescape"),
            headers,
            sni,
        )

    def _naive_match(
        self,
        method: str,
        host: str,
        path: str,
        headers: Mapping[str, str] | None = None,
        sni: str | None = None,
    ) -> RouteMatch[T] | None:
        """``match`` by scanning every entry in rank order (the reference for tests)."""
        if not path.startswith("/"):
            return None
        npath = normalize_path(path)
        method = method.upper()
        hostname, port = split_host_port(host) if host else ("", None)
        for entry in self._entries:
            if (
                entry.host_matches(hostname, port)
                and entry.path_matches(npath)
                and entry.rest_matches(method, headers, sni)
            ):
                return _route_match(entry, npath)
        return None

    def explain(
        self,
        method: str,
        host: str,
        path: str,
        headers: Mapping[str, str] | None = None,
        sni: str | None = None,
    ) -> list[Explanation]:
        """Every route entry in priority order, whether it matches the request and why."""
        result: list[Explanation] = []
        absolute = path.startswith("/")
        npath = normalize_path(path) if absolute else path
        method = method.upper()
        hostname, port = split_host_port(host) if host else ("", None)
        winner: Entry[T] | None = None
        for position, entry in enumerate(self._entries):
            if not absolute:
                failures = [f"request path {path!r} is not absolute"]
            else:
                failures = entry.failures(method, hostname, port, npath, headers, sni)
            matched = not failures
            selected = matched and winner is None
            if selected:
                winner = entry
                reason = "selected"
            elif matched and winner is not None:
                reason = f"outranked by route {_label(winner)}"
            else:
                reason = "; ".join(failures)
            result.append(
                Explanation(
                    entry.route,
                    entry.path,
                    position,
                    entry.priority_text(),
                    matched,
                    selected,
                    reason,
                )
            )
        for route in self._ignored:
            reason = f"protocols {', '.join(route.protocols)} are not HTTP: ignored by this router"
            result.append(Explanation(route, None, None, "-", False, False, reason))
        return result


def _label(entry: Entry[Any]) -> str:
    name = entry.route.name or entry.route.id
    return name if entry.path is None else f"{name} (path {entry.path})"


def _route_match(entry: Entry[T], npath: str) -> RouteMatch[T]:
    captures: dict[str, str] = {}
    end = 0
    if entry.prefix is not None:
        end = len(entry.prefix)
    elif entry.regex is not None:
        found = entry.regex.search(npath)
        if found is not None:  # always: the entry was chosen because it matched
            end = found.end()
            for number, value in enumerate(found.groups(), start=1):
                if value is not None:
                    captures[str(number)] = value
            for name, value in found.groupdict().items():
                if value is not None:
                    captures[name] = value
    if entry.route.strip_path and entry.path is not None:
        postfix = sanitize_postfix(npath[end:])
        stripped = postfix if postfix.startswith("/") else "/" + postfix
    else:
        postfix = npath[1:]
        stripped = npath
    return RouteMatch(entry.route, entry.target, entry.path, stripped, captures, npath, postfix)


def upstream_path(service_path: str | None, m: RouteMatch[Any]) -> str:
    """Kong's join of ``service.path`` and the (stripped) request path, v0 or v1."""
    base = service_path or "/"
    request = m.normalized_path
    postfix = m.postfix
    strip = m.route.strip_path
    if m.route.path_handling == "v1":
        if not strip:
            return base + request[1:]
        if base.endswith("/") and postfix.startswith("/"):
            return base[:-1] + postfix
        return base + postfix
    if base.endswith("/"):
        if not strip:
            return base + request[1:]
        if postfix == "":
            if base == "/" or request.endswith("/"):
                return base
            return base[:-1]
        if postfix.startswith("/"):
            return base[:-1] + postfix
        return base + postfix
    if strip:
        if postfix == "":
            return base + "/" if len(request) > 1 and request.endswith("/") else base
        if postfix.startswith("/"):
            return base + postfix
        return base + "/" + postfix
    return base if request == "/" else base + request
