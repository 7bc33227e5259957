"""request-transformer: in access, transform the request in Kong's order — URI
(``replace.uri``), method, headers, body, query string — each list applied as remove,
rename, replace, add, append (Kong's behaviour and PRIORITY 801).

Everything is compiled once per snapshot: pairs split, templates compiled, and what each
request needs (a header snapshot for templates, the body) decided up front; a request only
runs the operations configured.  The body is buffered (``needs_body``) only when body
operations are configured or ``http_method`` turns a form POST into a GET (its arguments
then join the query string).  Bodies over ``body_limit`` get 413; a JSON body that does not
parse gets 400; multipart bodies are forwarded untouched (not supported).  A rendered
header value with CR/LF/NUL gets 400 rather than reaching the upstream.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any
from urllib.parse import quote

from meshgate.proxy.filters.api import CompileEnv, PluginHandler, RequestContext
from meshgate.snapshot import PluginInstance

from .body import BadBody, Ops, transform_form, transform_json
from .params import decode_args, encode_args
from .schema import Config, split_pair
from .template import Env, Template, compile_template

_ENGINE_OWNED = frozenset(
    {"content-length", "transfer-encoding", "connection", "keep-alive", "proxy-connection",
     "te", "trailer", "upgrade", "expect"}
)  # fmt: skip
_EMPTY: Mapping[str, Any] = MappingProxyType({})
_PATH_SAFE = "/:@!$&'()*+,;=-._~%"
JSON, FORM, MULTIPART = "json", "form", "multipart"


def content_kind(content_type: str | None) -> str | None:
    if not content_type:
        return None
    lowered = content_type.lower()
    if "application/json" in lowered:
        return JSON
    if "multipart/form-data" in lowered:
        return MULTIPART
    if "application/x-www-form-urlencoded" in lowered:
        return FORM
    return None


def _pairs(entries: Sequence[str]) -> tuple[tuple[str, Template], ...]:
    out = []
    for entry in entries:
        name, value = split_pair(entry)
        out.append((name, compile_template(value)))
    return tuple(out)


def _names(entries: Sequence[str]) -> tuple[tuple[str, Template | None], ...]:
    return tuple((name, None) for name in entries)


def _headers_ok(ops: tuple[tuple[str, Any], ...]) -> tuple[tuple[str, Any], ...]:
    """Headers the proxy owns (Content-Length, Connection...) are never touched."""
    return tuple(op for op in ops if op[0].lower() not in _ENGINE_OWNED)


class Handler(PluginHandler):
    name = "request-transformer"
    PRIORITY = 801
    VERSION = "3.9.1"

    def __init__(self, config: Config, instance: PluginInstance, env: CompileEnv) -> None:
        super().__init__(config, instance, env)
        c = config
        self.method = c.http_method
        self.method_to_query = c.http_method in ("GET", "HEAD", "TRACE")
        self.uri = compile_template(c.replace.uri) if c.replace.uri is not None else None
        self.h_remove = _headers_ok(_names(c.remove.headers))
        self.h_rename = _headers_ok(_pairs(c.rename.headers))
        self.h_replace = _headers_ok(_pairs(c.replace.headers))
        self.h_add = _headers_ok(_pairs(c.add.headers))
        self.h_append = _headers_ok(_pairs(c.append.headers))
        self.q_ops: tuple[Ops, Ops, Ops, Ops, Ops] = (
            _names(c.remove.querystring), _pairs(c.rename.querystring),
            _pairs(c.replace.querystring), _pairs(c.add.querystring),
            _pairs(c.append.querystring),
        )  # fmt: skip
        self.b_ops: tuple[Ops, Ops, Ops, Ops, Ops] = (
            _names(c.remove.body), _pairs(c.rename.body), _pairs(c.replace.body),
            _pairs(c.add.body), _pairs(c.append.body),
        )  # fmt: skip
        self.has_headers = any(
            (self.h_remove, self.h_rename, self.h_replace, self.h_add, self.h_append)
        )
        self.has_query = any(self.q_ops)
        self.has_body = any(self.b_ops)
        self.needs_body = self.has_body or self.method_to_query
        templates = [t for _, t in (*self.h_rename, *self.h_replace, *self.h_add, *self.h_append)]
        for ops in (*self.q_ops[1:], *self.b_ops[1:]):
            templates += [t for _, t in ops if t is not None]
        if self.uri is not None:
            templates.append(self.uri)
        header_keys: set[str] = set()
        for template in templates:
            header_keys |= template.header_keys
        # the headers templates read, captured before this plugin changes any
        self.env_header_keys = tuple(sorted(header_keys))

    # ------------------------------------------------------------------ the request

    def _env(self, ctx: RequestContext) -> Env:
        headers: Mapping[str, Sequence[str]] = _EMPTY
        if self.env_header_keys:
            current = ctx.headers()
            headers = {k: tuple(current[k]) for k in self.env_header_keys if k in current}
        # the query is decoded only if a template reads it (the raw text cannot change before)
        return Env(headers, ctx.raw_query, ctx.uri_captures, ctx.shared)

    def access(self, ctx: RequestContext) -> None:
        env = self._env(ctx)
        try:
            if self.uri is not None:
                self._uri(ctx, env)
            if self.method is not None:
                self._method(ctx)
            if self.has_headers:
                self._headers(ctx, env)
            if self.has_body:
                self._body(ctx, env)
            if self.has_query:
                self._query(ctx, env)
        except BadBody as exc:
            ctx.exit(400, str(exc))
        except ValueError as exc:  # a rendered value the request cannot carry
            ctx.exit(400, f"request-transformer: {exc}")

    def _uri(self, ctx: RequestContext, env: Env) -> None:
        assert self.uri is not None
        path = quote(self.uri.render(env), safe=_PATH_SAFE)
        ctx.set_path(path if path.startswith("/") else "/" + path)

    def _method(self, ctx: RequestContext) -> None:
        assert self.method is not None
        ctx.set_method(self.method)
        if not self.method_to_query or content_kind(ctx.header("content-type")) != FORM:
            return
        form = decode_args(ctx.raw_body().decode("utf-8", "replace"))
        if form:
            query = decode_args(ctx.raw_query)
            for name, values in form.items():
                query.setdefault(name, []).extend(values)
            ctx.set_raw_query(encode_args(query))

    def _headers(self, ctx: RequestContext, env: Env) -> None:
        for name, _ in self.h_remove:
            if ctx.header(name) is not None:
                ctx.clear_header(name)
        if self.h_rename:
            current = ctx.headers()
            for old, new in self.h_rename:
                values = current.get(old.lower())
                new_name = new.render(env)
                if values is None or (old.lower() == new_name.lower() and old == new_name):
                    continue
                kept = list(values)
                ctx.clear_header(old)
                ctx.set_header(new_name, kept[0])
                for value in kept[1:]:
                    ctx.add_header(new_name, value)
        for name, value in self.h_replace:
            if ctx.header(name) is not None or name.lower() == "host":
                ctx.set_header(name, value.render(env))
        for name, value in self.h_add:
            if ctx.header(name) is None and name.lower() != "host":
                ctx.set_header(name, value.render(env))
        for name, value in self.h_append:
            ctx.add_header(name, value.render(env))

    def _body(self, ctx: RequestContext, env: Env) -> None:
        kind = content_kind(ctx.header("content-type"))
        if kind is None or kind == MULTIPART:
            return
        raw = ctx.raw_body(self.body_limit)
        if kind == JSON:
            new = transform_json(raw, env, self.b_ops)
        else:
            new = transform_form(raw, env, self.b_ops)
        if new is not None:
            ctx.set_body(new)

    def _query(self, ctx: RequestContext, env: Env) -> None:
        remove, rename, replace, add, append = self.q_ops
        query = decode_args(ctx.raw_query)
        for name, _ in remove:
            query.pop(name, None)
        for old, new in rename:
            assert new is not None
            new_name = new.render(env)
            if old != new_name and old in query:
                query[new_name] = query.pop(old)
        for name, value in replace:
            assert value is not None
            if name in query:
                query[name] = [value.render(env)]
        for name, value in add:
            assert value is not None
            if name not in query:
                query[name] = [value.render(env)]
        for name, value in append:
            assert value is not None
            query.setdefault(name, []).append(value.render(env))
        ctx.set_raw_query(encode_args(query))
