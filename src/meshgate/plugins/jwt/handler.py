"""jwt: find a token (query arguments, cookies, ``Bearer`` headers), decode it, find the
``jwt_secrets`` credential named by its ``key_claim_name`` claim, check the algorithm, the
signature and the configured registered claims, and authenticate the consumer (Kong 3.9's
behaviour, messages and PRIORITY 1450).

401 bodies are Kong's: "Unauthorized" (no token; ``WWW-Authenticate: Bearer``), and with
``WWW-Authenticate: Bearer error="invalid_token"``: "Multiple tokens provided", "Bad token;
invalid JSON|invalid alg|invalid signature", "No mandatory 'iss' in claims", "Invalid 'iss' in
claims", "No credentials found for given 'iss'", "Invalid algorithm", "Invalid key/secret",
"Invalid signature", and claim errors as a JSON object (``{"exp": "token expired"}``).
Credential keys (PEM) are loaded on first use and kept for the snapshot's life; so are
tokens whose signature verified (at most ``MAX_VERIFIED``): a repeated token skips decoding
and the signature check, never the claims checks.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from meshgate.plugins._auth import (
    Anonymous,
    Failure,
    failure,
    header_text,
    run_authentication,
    www_authenticate,
)
from meshgate.proxy.filters.api import CompileEnv, PluginHandler, RequestContext
from meshgate.snapshot import Consumer, PluginInstance

from .schema import Config
from .token import Token, Verifier, b64url_decode, decode

# verified tokens remembered per handler (a snapshot's life), oldest dropped first
MAX_VERIFIED = 4096
_BEARER = re.compile(r"\s*[Bb]earer\s+(.+)")


def _check_exp(value: float, now: float) -> str | None:
    return "token expired" if value <= now else None


def _check_nbf(value: float, now: float) -> str | None:
    return "token not valid yet" if value > now else None


_CLAIM_CHECKS: dict[str, Callable[[float, float], str | None]] = {
    "exp": _check_exp,
    "nbf": _check_nbf,
}


def _number(value: Any) -> float | None:
    """A JSON number as a float (None for anything else, booleans included)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _cookies(ctx: RequestContext) -> dict[str, str]:
    """Cookie name -> value (the first of a name), from every Cookie header."""
    found: dict[str, str] = {}
    for line in ctx.headers().get("cookie", ()):
        for piece in line.split(";"):
            name, eq, value = piece.strip().partition("=")
            if eq and name not in found:
                found[name] = value.strip()
    return found


class Handler(PluginHandler):
    name = "jwt"
    PRIORITY = 1450
    VERSION = "3.9.1"

    def __init__(self, config: Config, instance: PluginInstance, env: CompileEnv) -> None:
        super().__init__(config, instance, env)
        self.conf = config
        self.claim = config.key_claim_name
        self.header_names = tuple(name.lower() for name in config.header_names)
        self.by_key: dict[str, tuple[Consumer, Mapping[str, Any]]] = {}
        for consumer, credential in env.credentials("jwt_secrets"):
            key = credential.get("key")
            if isinstance(key, str):
                self.by_key.setdefault(key, (consumer, credential))
        self.verifiers: dict[str, Verifier | None] = {}
        # token text -> what its verified signature established (claims are checked per use)
        self.verified: dict[str, tuple[Consumer, Mapping[str, Any], str, Token]] = {}
        self.anonymous = Anonymous(env, config.anonymous)
        base = www_authenticate("Bearer", config.realm)
        invalid = f'{base} error="invalid_token"'
        self.www_invalid = invalid
        self.no_token = failure("Unauthorized", base)
        self.multiple = failure("Multiple tokens provided", invalid)
        self.no_claim = failure(f"No mandatory '{self.claim}' in claims", invalid)
        self.empty_claim = failure(f"Invalid '{self.claim}' in claims", invalid)
        self.no_credentials = failure(f"No credentials found for given '{self.claim}'", invalid)
        self.bad_algorithm = failure("Invalid algorithm", invalid)
        self.bad_key = failure("Invalid key/secret", invalid)
        self.bad_signature = failure("Invalid signature", invalid)
        self.too_long = failure({"exp": "exceeds maximum allowed expiration"}, invalid)

    def access(self, ctx: RequestContext) -> None:
        if not self.conf.run_on_preflight and ctx.method == "OPTIONS":
            return None
        run_authentication(ctx, self.anonymous, self._authenticate)
        return None

    def _tokens(self, ctx: RequestContext) -> list[str]:
        found: dict[str, None] = {}
        conf = self.conf
        if conf.uri_param_names and ctx.raw_query:
            query = ctx.query()
            for name in conf.uri_param_names:
                for value in query.get(name, ()):
                    if value:
                        found[value] = None
        if conf.cookie_names:
            cookies = _cookies(ctx)
            for name in conf.cookie_names:
                cookie = cookies.get(name)
                if cookie:
                    found[cookie] = None
        for header_name in self.header_names:
            line = ctx.header(header_name)
            if line is not None:
                match = _BEARER.search(header_text(line))
                if match is not None and match.group(1):
                    found[match.group(1)] = None
        return list(found)

    def _verifier(self, credential: Mapping[str, Any], algorithm: str) -> Verifier | None:
        cache_key = f"{credential.get('id')}|{credential.get('key')}"
        if cache_key in self.verifiers:
            return self.verifiers[cache_key]
        secret: bytes | None = None
        raw_secret = credential.get("secret")
        if isinstance(raw_secret, str):
            secret = (
                b64url_decode(raw_secret) if self.conf.secret_is_base64 else raw_secret.encode()
            )
        public_key = credential.get("rsa_public_key")
        verifier = Verifier.build(
            algorithm, secret, public_key if isinstance(public_key, str) else None
        )
        self.verifiers[cache_key] = verifier
        return verifier

    def _authenticate(self, ctx: RequestContext) -> Failure | None:
        tokens = self._tokens(ctx)
        if not tokens:
            return self.no_token
        if len(tokens) > 1:
            return self.multiple
        token_text = tokens[0]
        hit = self.verified.get(token_text)
        if hit is not None:
            return self._accept(ctx, *hit, token_text)
        token = decode(token_text)
        if isinstance(token, str):
            return failure(f"Bad token; {token}", self.www_invalid)
        key = token.claims.get(self.claim)
        if key is None or key is False:
            key = token.header.get(self.claim)
        if key is None or key is False:
            return self.no_claim
        if key == "":
            return self.empty_claim
        record = self.by_key.get(key) if isinstance(key, str) else None
        if record is None:
            return self.no_credentials
        consumer, credential = record
        algorithm = credential.get("algorithm") or "HS256"
        if token.header.get("alg") != algorithm:
            return self.bad_algorithm
        verifier = self._verifier(credential, algorithm)
        if verifier is None:
            return self.bad_key
        if not verifier.verify(token.signing_input, token.signature):
            return self.bad_signature
        if len(self.verified) >= MAX_VERIFIED:
            del self.verified[next(iter(self.verified))]
        self.verified[token_text] = (consumer, credential, key, token)
        return self._accept(ctx, consumer, credential, key, token, token_text)

    def _accept(
        self,
        ctx: RequestContext,
        consumer: Consumer,
        credential: Mapping[str, Any],
        key: str,
        token: Token,
        token_text: str,
    ) -> Failure | None:
        problem = self._claims_problem(token)
        if problem is not None:
            return problem
        ctx.authenticate(consumer, credential)
        ctx.set_header("X-Credential-Identifier", key)
        ctx.shared["authenticated_jwt_token"] = token_text
        return None

    def _claims_problem(self, token: Token) -> Failure | None:
        conf = self.conf
        now = time.time()
        errors: dict[str, str] = {}
        for name in conf.claims_to_verify or ():
            value = _number(token.claims.get(name))
            if value is None:
                errors[name] = "must be a number"
            else:
                error = _CLAIM_CHECKS[name](value, now)
                if error is not None:
                    errors[name] = error
        if errors:
            return failure(errors, self.www_invalid)
        if conf.maximum_expiration > 0:
            exp = _number(token.claims.get("exp"))
            if exp is None or exp - now > conf.maximum_expiration:
                return self.too_long
        return None
