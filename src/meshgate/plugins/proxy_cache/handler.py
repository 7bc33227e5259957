"""proxy-cache: Kong's proxy-cache with the memory strategy (PRIORITY 100).

access: a request whose method is cacheable (and, with ``cache_control``, that does not say
no-store/no-cache nor carry Authorization) is looked up by its cache key.  Fresh entry → answered
from the cache here (``X-Cache-Status: Hit``, ``Age``, ``X-Cache-Key``, the stored status,
headers and body).  Missing entry → ``Miss``; stale one → ``Refresh``: the request goes upstream
and its response is captured.  Not cacheable → ``Bypass``.
response: the upstream answer is kept only when its status and Content-Type are cacheable (and,
with ``cache_control``, its Cache-Control allows it and gives it a positive lifetime); else
``Bypass``.  body: the chunks are collected (up to the cache's entry limit) and stored at the end.

The diagnostic headers follow ``response_headers`` (or are all sent when the request has a
``Kong-Debug`` header).  Hop-by-hop headers, Content-Length, Date, Server and rate-limit
``*ratelimit-remaining*`` headers are not replayed from the cache.  Entries are per worker
process (``store.MemoryCache``).
"""

from __future__ import annotations

import re
import time
from typing import Any

from meshgate.proxy.filters.api import CompileEnv, PluginHandler, RequestContext
from meshgate.snapshot import PluginInstance

from .schema import Config
from .store import Entry, MemoryCache, cache_key

_NOT_REPLAYED = frozenset(
    {
        "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
        "trailers", "transfer-encoding", "upgrade", "content-length", "date", "server", "age",
        "x-cache-status", "x-cache-key",
    }
)  # fmt: skip
_DIRECTIVE = re.compile(r"^\s*([^=]+?)\s*(?:=\s*(.+?))?\s*$")
wall_clock = time.time  # a module attribute so tests can move time


def parse_directives(value: str | None) -> dict[str, Any]:
    """Kong's ``parse_directive_header``: lower-case directive → number, string or True."""
    if not value:
        return {}
    found: dict[str, Any] = {}
    for part in value.split(","):
        match = _DIRECTIVE.match(part)
        if match is None or not match.group(1):
            continue
        raw = match.group(2)
        number: Any = True
        if raw is not None:
            raw = raw.strip('"')
            try:
                number = int(raw)
            except ValueError:
                try:
                    number = float(raw)
                except ValueError:
                    number = raw
        found[match.group(1).lower()] = number
    return found


def parse_mime(value: str) -> tuple[str, str, dict[str, str]] | None:
    """``type/subtype; k=v`` → (type, subtype, params), lower-cased; None if malformed."""
    media, _, rest = value.partition(";")
    kind, slash, subtype = media.strip().lower().partition("/")
    if not slash or not kind or not subtype:
        return None
    params: dict[str, str] = {}
    for item in rest.split(";"):
        name, eq, param = item.partition("=")
        if eq:
            params[name.strip().lower()] = param.strip().strip('"').lower()
    return kind, subtype, params


def resource_ttl(cc: dict[str, Any], expires: str | None, now: float) -> float:
    """Kong's ``calculate_resource_ttl``: s-maxage, max-age, else Expires - now (>= 0)."""
    max_age = cc.get("s-maxage", cc.get("max-age"))
    if isinstance(max_age, int | float) and not isinstance(max_age, bool):
        return max(float(max_age), 0.0)
    if expires:
        from email.utils import parsedate_to_datetime

        try:
            return max(parsedate_to_datetime(expires).timestamp() - now, 0.0)
        except (TypeError, ValueError):
            return 0.0
    return 0.0


class _Pending:
    """A request whose response may be stored (kong.ctx.plugin.proxy_cache)."""

    __slots__ = ("chunks", "headers", "key", "size", "ttl")

    def __init__(self, key: str) -> None:
        self.key = key
        self.headers: list[tuple[str, str]] | None = None
        self.ttl = 0.0
        self.chunks: list[bytes] = []
        self.size = 0


class Handler(PluginHandler):
    name = "proxy-cache"
    PRIORITY = 100
    VERSION = "3.9.1"

    def __init__(self, config: Config, instance: PluginInstance, env: CompileEnv) -> None:
        super().__init__(config, instance, env)
        self.conf = config
        self.methods = frozenset(config.request_method)
        self.codes = frozenset(config.response_code)
        self.types = [m for m in (parse_mime(t) for t in config.content_type) if m is not None]
        self.cache_control = config.cache_control
        self.show_status = config.response_headers.x_cache_status
        self.show_key = config.response_headers.x_cache_key
        self.show_age = config.response_headers.age
        caches: dict[str, MemoryCache] = env.node_resource("proxy-cache:memory", dict)
        cache = caches.get(config.memory.dictionary_name)
        if cache is None:
            cache = caches[config.memory.dictionary_name] = MemoryCache()
        self.cache = cache
        self.state_key = f"proxy-cache:{instance.id}"

    # ------------------------------------------------------------------ helpers

    def _diagnostic(self, ctx: RequestContext, name: str, value: str, shown: bool) -> None:
        if shown or ctx.header("kong-debug") is not None:
            ctx.set_response_header(name, value)

    def _cacheable_type(self, content_type: str) -> bool:
        parsed = parse_mime(content_type)
        if parsed is None:
            return False
        kind, subtype, params = parsed
        for want_kind, want_sub, want_params in self.types:
            if (want_kind in ("*", kind) and want_sub in ("*", subtype)
                    and want_params == params):  # fmt: skip
                return True
        return False

    def _signal(self, ctx: RequestContext, key: str, status: str) -> None:
        ctx.shared[self.state_key] = _Pending(key)
        self._diagnostic(ctx, "X-Cache-Key", key, self.show_key)
        self._diagnostic(ctx, "X-Cache-Status", status, self.show_status)

    # ------------------------------------------------------------------ phases

    def access(self, ctx: RequestContext) -> None:
        conf = self.conf
        method = ctx.method
        cc = parse_directives(ctx.header("cache-control")) if self.cache_control else {}
        if method not in self.methods or (
            self.cache_control
            and ("no-store" in cc or "no-cache" in cc or ctx.header("authorization") is not None)
        ):
            self._diagnostic(ctx, "X-Cache-Status", "Bypass", self.show_status)
            return
        consumer, route = ctx.consumer, ctx.route
        path = ctx.path.lower() if conf.ignore_uri_case else ctx.path
        key = cache_key(
            consumer.id if consumer is not None else None,
            route.id if route is not None else None,
            method,
            path,
            ctx.query(),
            ctx.headers() if conf.vary_headers else {},
            conf.vary_query_params,
            conf.vary_headers,
        )
        now = wall_clock()
        entry = self.cache.get(key, now)
        if entry is None:
            if self.cache_control and "only-if-cached" in cc:
                self._diagnostic(ctx, "X-Cache-Key", key, self.show_key)
                ctx.exit(504)
            self._signal(ctx, key, "Miss")
            return
        age = now - entry.timestamp
        if self.cache_control:
            max_age = _num(cc.get("max-age"))
            max_stale = _num(cc.get("max-stale"))
            min_fresh = _num(cc.get("min-fresh"))
            if (
                (max_age is not None and age > max_age)
                or (max_stale is not None and age - entry.ttl > max_stale)
                or (min_fresh is not None and entry.ttl - age < min_fresh)
            ):
                self._signal(ctx, key, "Refresh")
                return
        elif age > conf.cache_ttl:
            self._signal(ctx, key, "Refresh")
            return
        self._serve(ctx, entry, key, int(age))

    def _serve(self, ctx: RequestContext, entry: Entry, key: str, age: int) -> None:
        debug = ctx.header("kong-debug") is not None
        single: dict[str, str] = {}
        for name, value in entry.headers:
            if name in single:
                ctx.add_response_header(name, value)
            else:
                single[name] = value
        if self.show_age or debug:
            single["Age"] = str(age)
        if self.show_status or debug:
            single["X-Cache-Status"] = "Hit"
        if self.show_key or debug:
            single["X-Cache-Key"] = key
        ctx.exit(entry.status, entry.body, single)

    def response(self, ctx: RequestContext) -> None:
        pending: _Pending | None = ctx.shared.get(self.state_key)
        if pending is None:
            return
        cacheable = ctx.status in self.codes
        types = ctx.response_headers().get("content-type")
        if cacheable:
            cacheable = types is not None and len(types) == 1 and self._cacheable_type(types[0])
        ttl = float(self.conf.cache_ttl)
        if cacheable and self.cache_control:
            cc = parse_directives(", ".join(ctx.response_headers().get("cache-control", ())))
            ttl = resource_ttl(cc, ctx.response_header("expires"), wall_clock())
            if "private" in cc or "no-store" in cc or "no-cache" in cc or ttl <= 0:
                cacheable = False
        if not cacheable:
            self._diagnostic(ctx, "X-Cache-Status", "Bypass", self.show_status)
            del ctx.shared[self.state_key]
            return
        pending.ttl = ttl
        pending.headers = [
            (name, value)
            for name, values in ctx.response_headers().items()
            if name not in _NOT_REPLAYED and "ratelimit-remaining" not in name
            for value in values
        ]

    def body(self, ctx: RequestContext, chunk: bytes, eof: bool) -> bytes:
        pending: _Pending | None = ctx.shared.get(self.state_key)
        if pending is None or pending.headers is None:
            return chunk
        if chunk:
            pending.size += len(chunk)
            if pending.size > self.cache.max_entry:
                del ctx.shared[self.state_key]  # too big to cache: stop collecting
                return chunk
            pending.chunks.append(chunk)
        if eof:
            del ctx.shared[self.state_key]
            now = wall_clock()
            conf = self.conf
            if conf.storage_ttl is not None:
                keep = float(conf.storage_ttl)
            else:
                keep = pending.ttl if self.cache_control else float(conf.cache_ttl)
            self.cache.put(
                pending.key,
                Entry(ctx.status, pending.headers, b"".join(pending.chunks), now, pending.ttl,
                      now + keep),
            )  # fmt: skip
        return chunk


def _num(value: Any) -> float | None:
    """A directive's numeric value (None when absent or not a number)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None
