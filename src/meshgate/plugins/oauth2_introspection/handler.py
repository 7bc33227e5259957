"""oauth2-introspection: validate the bearer token (``Authorization: Bearer`` or the
``access_token`` query argument) with the introspection endpoint (RFC 7662) and authenticate
the consumer it maps to (Kong's plugin, PRIORITY 1700).

Answers are cached per token for ``ttl`` seconds (never past the token's ``exp``), active or
not; a cache hit costs no task and no I/O.  Concurrent requests with the same uncached token
share one introspection call.  Upstream headers on success: X-Consumer-* (when a consumer
matches), X-Credential-Identifier (``username``), X-Credential-Scope, -Client-ID, -Token-Type,
-Exp, -Iat, -Nbf, -Sub, -Aud, -Iss, -Jti and X-Credential-<claim> for
``custom_claims_forward``.  Failures are 401 with an OAuth error body and
``WWW-Authenticate: Bearer realm="service" error=...``; an endpoint that cannot be reached or
answers badly gives 500 "An unexpected error occurred" (logged, not cached).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote_plus, urlencode

from meshgate.plugins._auth import Anonymous, header_text
from meshgate.proxy.filters.api import CompileEnv, PluginHandler, RequestContext
from meshgate.snapshot import Consumer, PluginInstance
from meshgate.tasks import spawn

from .client import ClientError, Endpoint, HttpClient
from .schema import Config

log = logging.getLogger("meshgate.plugins.oauth2_introspection")

_BEARER = re.compile(r"\s*[Bb]earer\s+(\S+)")
_SAFE_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*\Z")
_TOKEN = re.compile(r"[\x21-\x7e]+\Z")  # printable ASCII, no spaces (RFC 6750 b64token and more)
MAX_TOKEN = 8 * 1024
MAX_CACHED = 10_000
_STANDARD_CLAIMS = (
    ("scope", "X-Credential-Scope"),
    ("client_id", "X-Credential-Client-ID"),
    ("username", "X-Credential-Identifier"),
    ("token_type", "X-Credential-Token-Type"),
    ("exp", "X-Credential-Exp"),
    ("iat", "X-Credential-Iat"),
    ("nbf", "X-Credential-Nbf"),
    ("sub", "X-Credential-Sub"),
    ("aud", "X-Credential-Aud"),
    ("iss", "X-Credential-Iss"),
    ("jti", "X-Credential-Jti"),
)


def _oauth_error(error: str, description: str) -> tuple[dict[str, str], dict[str, str]]:
    body = {"error": error, "error_description": description}
    www = f'Bearer realm="service" error="{error}" error_description="{description}"'
    return body, {"WWW-Authenticate": www}


MISSING = _oauth_error("invalid_request", "The access token is missing")
INVALID = _oauth_error("invalid_token", "The access token is invalid or has expired")


def _header_value(value: Any) -> str | None:
    """A claim as an upstream header value (None if it cannot be one)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, list):
        parts = [_header_value(v) for v in value]
        if any(p is None for p in parts):
            return None
        text = ",".join(p for p in parts if p is not None)
    elif isinstance(value, str | int | float):
        text = str(value)
    else:
        return None
    return text if _SAFE_VALUE.match(text) else None


@dataclass(frozen=True, slots=True)
class Answer:
    """What an introspection said about a token, ready to apply to a request."""

    active: bool
    consumer: Consumer | None = None
    credential: Mapping[str, Any] | None = None
    headers: tuple[tuple[str, str], ...] = ()


INACTIVE = Answer(active=False)


class Handler(PluginHandler):
    name = "oauth2-introspection"
    PRIORITY = 1700
    VERSION = "3.9.1"

    def __init__(self, config: Config, instance: PluginInstance, env: CompileEnv) -> None:
        super().__init__(config, instance, env)
        self.conf = config
        self.anonymous = Anonymous(env, config.anonymous)
        consumers = env.snapshot.consumers
        if config.consumer_by == "username":
            self.consumer_of = {c.username: c for c in consumers if c.username is not None}
        else:
            self.consumer_of = {c.custom_id: c for c in consumers if c.custom_id is not None}
        self.claim_headers = _STANDARD_CLAIMS + tuple(
            (claim, f"X-Credential-{claim}") for claim in config.custom_claims_forward
        )
        self.static_headers = [
            ("Authorization", config.authorization_value),
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Accept", "application/json"),
            *config.custom_introspection_headers.items(),
        ]
        self.client = HttpClient(Endpoint.parse(config.introspection_url), config.keepalive / 1000)
        self.cache: dict[str, tuple[float, Answer]] = {}
        self.pending: dict[str, asyncio.Task[Answer | str]] = {}

    async def stop(self) -> None:
        self.client.close()

    # ------------------------------------------------------------------ the request

    def access(self, ctx: RequestContext) -> Awaitable[None] | None:
        if not self.conf.run_on_preflight and ctx.method == "OPTIONS":
            return None
        if self.anonymous.enabled and ctx.credential is not None:
            return None
        token = self._token(ctx)
        if token is None:
            self._fail(ctx, MISSING)
            return None
        if not _TOKEN.match(token):
            self._fail(ctx, INVALID)
            return None
        cached = self.cache.get(token)
        if cached is not None and (cached[0] == 0 or cached[0] > time.monotonic()):
            self._apply(ctx, cached[1])
            return None
        return self._introspect_then_apply(ctx, token)

    def _token(self, ctx: RequestContext) -> str | None:
        token: str | None = None
        authorization = ctx.header("authorization")
        if authorization is not None:
            match = _BEARER.match(header_text(authorization))
            if match is not None:
                token = match.group(1)
                if self.conf.hide_credentials:
                    ctx.clear_header("authorization")
        if token is None:
            values = ctx.query().get("access_token")
            if values and values[0]:
                token = values[0]
                if self.conf.hide_credentials:
                    kept = [
                        piece
                        for piece in ctx.raw_query.split("&")
                        if unquote_plus(piece.partition("=")[0]) != "access_token"
                    ]
                    ctx.set_raw_query("&".join(kept))
        if token is None or len(token) > MAX_TOKEN:
            return None
        return token

    def _fail(self, ctx: RequestContext, error: tuple[dict[str, str], dict[str, str]]) -> None:
        if self.anonymous.enabled:
            self.anonymous.authenticate(ctx)
            return None
        ctx.exit(401, error[0], error[1])

    def _apply(self, ctx: RequestContext, answer: Answer) -> None:
        if not answer.active:
            self._fail(ctx, INVALID)
            return None
        ctx.authenticate(answer.consumer, answer.credential)
        for name, value in answer.headers:
            ctx.set_header(name, value)
        return None

    async def _introspect_then_apply(self, ctx: RequestContext, token: str) -> None:
        try:
            answer = await self._introspect_shared(token)
        except ClientError as exc:
            route = ctx.route.id if ctx.route is not None else None
            log.error("oauth2-introspection (route %s): %s", route, exc)
            ctx.exit(500, "An unexpected error occurred")
        self._apply(ctx, answer)

    # ------------------------------------------------------------------ the endpoint

    async def _introspect_shared(self, token: str) -> Answer:
        """One introspection per token at a time, in a task of its own: concurrent askers
        share it, and a client that goes away does not cancel it for the others."""
        task = self.pending.get(token)
        if task is None:
            task = spawn(self._introspect_quietly(token), name="oauth2-introspection")
            self.pending[token] = task
            task.add_done_callback(lambda _done: self.pending.pop(token, None))
        outcome = await asyncio.shield(task)
        if isinstance(outcome, str):
            raise ClientError(outcome)
        return outcome

    async def _introspect_quietly(self, token: str) -> Answer | str:
        """The answer, or what went wrong (reported by each asker, not by the task)."""
        try:
            return await self._introspect(token)
        except (ClientError, TimeoutError, OSError, ValueError) as exc:
            return str(exc) or type(exc).__name__

    async def _introspect(self, token: str) -> Answer:
        form = {"token": token}
        if self.conf.token_type_hint:
            form["token_type_hint"] = self.conf.token_type_hint
        headers = list(self.static_headers)
        async with asyncio.timeout(self.conf.timeout / 1000):
            status, body = await self.client.post(
                headers, urlencode(form, quote_via=quote).encode()
            )
        if status != 200:
            raise ClientError(f"introspection endpoint answered {status}")
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            raise ClientError("introspection endpoint answered invalid JSON") from None
        if not isinstance(data, dict):
            raise ClientError("introspection endpoint answered a non-object")
        answer = self._answer(data)
        self._remember(token, answer, data.get("exp"))
        return answer

    def _answer(self, data: dict[str, Any]) -> Answer:
        if data.get("active") is not True:
            return INACTIVE
        headers = []
        for claim, header in self.claim_headers:
            value = _header_value(data.get(claim))
            if value is not None:
                headers.append((header, value))
        key = data.get(self.conf.consumer_by)
        consumer = self.consumer_of.get(key) if isinstance(key, str) else None
        username = data.get("username")
        credential = {**data, "id": username if isinstance(username, str) else None}
        return Answer(True, consumer, credential, tuple(headers))

    def _remember(self, token: str, answer: Answer, exp: Any) -> None:
        now = time.monotonic()
        ttl = self.conf.ttl
        expires = now + ttl if ttl > 0 else 0.0
        if isinstance(exp, int | float) and not isinstance(exp, bool):
            left = exp - time.time()
            if left <= 0:
                return
            expires = min(expires, now + left) if expires else now + left
        cache = self.cache
        if len(cache) >= MAX_CACHED:
            for key in [k for k, (until, _) in cache.items() if until and until <= now]:
                del cache[key]
            while len(cache) >= MAX_CACHED:
                del cache[next(iter(cache))]
        cache[token] = (expires, answer)
