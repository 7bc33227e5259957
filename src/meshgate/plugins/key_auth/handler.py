"""key-auth: find the API key (headers, then query, then body, per key name in order), match
it against ``keyauth_credentials`` and authenticate its consumer (Kong 3.9's behaviour,
messages and PRIORITY 1250).

Failures are 401 with ``WWW-Authenticate: Key`` (``Key realm="..."`` with ``realm``): "No API
key found in request", "Duplicate API key found" (a repeated header/argument), "Unauthorized"
(unknown or expired key).  Keys are indexed once per snapshot by their SHA-256, and the match
confirmed with a constant-time comparison.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import unquote_plus

from meshgate.plugins._auth import (
    Anonymous,
    Failure,
    SecretIndex,
    failure,
    header_text,
    run_authentication,
    www_authenticate,
)
from meshgate.proxy.filters.api import CompileEnv, PluginHandler, RequestContext
from meshgate.snapshot import Consumer, PluginInstance

from .body import body_kind, body_values, without_field
from .schema import Config

ERR_DUPLICATE_API_KEY = "Duplicate API key found"
ERR_NO_API_KEY = "No API key found in request"
ERR_INVALID_AUTH_CRED = "Unauthorized"

# (consumer, credential, expiry as epoch seconds or None)
KeyRecord = tuple[Consumer, Mapping[str, Any], float | None]


def _expiry(credential: Mapping[str, Any]) -> float | None:
    ttl = credential.get("ttl")
    if not isinstance(ttl, int | float) or isinstance(ttl, bool) or ttl <= 0:
        return None
    created = credential.get("created_at")
    return float(created) + ttl if isinstance(created, int | float) else None


def _remove_query_arg(raw_query: str, name: str) -> str:
    kept = [p for p in raw_query.split("&") if unquote_plus(p.partition("=")[0]) != name]
    return "&".join(kept)


class Handler(PluginHandler):
    name = "key-auth"
    PRIORITY = 1250
    VERSION = "3.9.1"

    def __init__(self, config: Config, instance: PluginInstance, env: CompileEnv) -> None:
        super().__init__(config, instance, env)
        self.conf = config
        self.needs_body = config.key_in_body
        self.skip_preflight = not config.run_on_preflight
        self.in_header, self.in_query = config.key_in_header, config.key_in_query
        # (name as configured, header names to look up: lower-case, and '_' read as '-' too)
        self.names = tuple(
            (name, tuple(dict.fromkeys((name.lower(), name.lower().replace("_", "-")))))
            for name in config.key_names
        )
        self.keys: SecretIndex[KeyRecord] = SecretIndex()
        for consumer, credential in env.credentials("keyauth_credentials"):
            key = credential.get("key")
            if isinstance(key, str) and key:
                self.keys.add(key, (consumer, credential, _expiry(credential)))
        self.anonymous = Anonymous(env, config.anonymous)
        www = www_authenticate("Key", config.realm)
        self.no_key = failure(ERR_NO_API_KEY, www)
        self.duplicate = failure(ERR_DUPLICATE_API_KEY, www)
        self.invalid = failure(ERR_INVALID_AUTH_CRED, www)

    def access(self, ctx: RequestContext) -> None:
        if self.skip_preflight and ctx.method == "OPTIONS":
            return None
        run_authentication(ctx, self.anonymous, self._authenticate)
        return None

    def _authenticate(self, ctx: RequestContext) -> Failure | None:
        conf = self.conf
        key: str | None = None
        body: dict[str, Any] | None = None
        headers = ctx.headers() if self.in_header else None
        for name, header_names in self.names:
            found: str | Sequence[Any] | None = None
            if headers is not None:
                for header_name in header_names:
                    values = headers.get(header_name)
                    if values:
                        found = values[0] if len(values) == 1 else values
                        break
                if isinstance(found, str):
                    found = header_text(found)
            if found is None and self.in_query:
                values = ctx.query().get(name)
                if values:
                    found = values[0] if len(values) == 1 else values
            if found is None and conf.key_in_body:
                if body is None:
                    body = self._body_values(ctx)
                found = body.get(name)
            if isinstance(found, str):
                key = found
                if conf.hide_credentials:
                    self._hide(ctx, name, header_names)
                break
            if isinstance(found, list | tuple | dict):
                return self.duplicate
        if not key:
            return self.no_key
        record = self.keys.find(key)
        if record is None:
            return self.invalid
        consumer, credential, expires = record
        if expires is not None and time.time() >= expires:
            return self.invalid
        ctx.authenticate(consumer, credential)
        return None

    @staticmethod
    def _body_values(ctx: RequestContext) -> dict[str, Any]:
        kind = body_kind(ctx.header("content-type"))
        if kind is None:
            return {}
        return body_values(ctx.raw_body(), *kind)

    def _hide(self, ctx: RequestContext, name: str, header_names: Sequence[str]) -> None:
        for header_name in header_names:
            ctx.clear_header(header_name)
        if name in ctx.query():
            ctx.set_raw_query(_remove_query_arg(ctx.raw_query, name))
        if self.conf.key_in_body:
            kind = body_kind(ctx.header("content-type"))
            if kind is not None:
                raw = ctx.raw_body()
                if raw:
                    ctx.set_body(without_field(raw, *kind, name))
