"""hmac-auth: check an HMAC signature over request headers (Kong 3.9's behaviour, messages
and PRIORITY 1030).

The client sends ``Authorization`` (or ``Proxy-Authorization``)::

    hmac username="alice", algorithm="hmac-sha256", headers="date @request-target",
         signature="<base64 of HMAC(secret, signing string)>"

The signing string is one line per listed header, joined with ``\\n``: ``name: value``;
``@request-target`` → ``@request-target: <lower-case method> <path?query>``; ``request-line``
→ ``<METHOD> <path?query> HTTP/<version>``; an absent header → ``name:``.  A ``Date`` or
``X-Date`` header within ``clock_skew`` seconds is required.  401 messages: "Unauthorized"
(no credential header), "HMAC signature cannot be verified, a valid date or x-date header is
required for HMAC Authentication", "HMAC signature cannot be verified" (malformed, unknown
user, algorithm not allowed, an enforced header unsigned), "HMAC signature does not match"
(wrong signature, or body not matching ``Digest: SHA-256=<base64>`` with
``validate_request_body``).  Signatures and digests are compared in constant time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from collections.abc import Mapping
from email.utils import mktime_tz, parsedate_tz
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

SIGNATURE_NOT_VALID = "HMAC signature cannot be verified"
SIGNATURE_NOT_SAME = "HMAC signature does not match"
DATE_REQUIRED = (
    "HMAC signature cannot be verified, a valid date or x-date header is required for "
    "HMAC Authentication"
)
_DIGESTS = {
    "hmac-sha1": hashlib.sha1,
    "hmac-sha256": hashlib.sha256,
    "hmac-sha384": hashlib.sha384,
    "hmac-sha512": hashlib.sha512,
}
_SCHEME = re.compile(r"\s*[Hh]mac\s+")
# the usual layout (Kong's order), parsed in one match; anything else goes the long way
_KONG_ORDER = re.compile(
    r'\s*[Hh]mac\s+username="([^"]+)",\s*algorithm="([^"]+)",\s*headers="([^"]+)",'
    r'\s*signature="([^"]+)"\s*\Z'
)
_PARAM = re.compile(r'\s*([A-Za-z]+)\s*=\s*"([^"]*)"\s*(?:,|\Z)')
# parsed Date values remembered (requests of the same second share one)
_DATES_KEPT = 256
# an Authorization value longer than this is refused unparsed
_MAX_HEADER = 16 * 1024


def parse_authorization(value: str | None) -> dict[str, str]:
    """The parameters of an ``hmac`` Authorization value ({} if it is not one)."""
    if value is None or len(value) > _MAX_HEADER:
        return {}
    usual = _KONG_ORDER.match(value)
    if usual is not None:
        username, algorithm, headers, signature = usual.groups()
        return {
            "username": username,
            "algorithm": algorithm,
            "headers": headers,
            "signature": signature,
        }
    scheme = _SCHEME.match(value)
    if scheme is None:
        return {}
    params: dict[str, str] = {}
    position = scheme.end()
    while position < len(value):
        match = _PARAM.match(value, position)
        if match is None:
            return {}
        params.setdefault(match.group(1).lower(), match.group(2))
        position = match.end()
    if not all(params.get(k) for k in ("username", "algorithm", "headers", "signature")):
        return {}
    return params


def _request_time(value: str | None) -> float | None:
    if not value or len(value) > 100:
        return None
    try:
        parsed = parsedate_tz(value)
        return float(mktime_tz(parsed)) if parsed is not None else None
    except (ValueError, OverflowError, TypeError, IndexError):
        return None


def _b64decode(value: str) -> bytes | None:
    try:
        data = value.encode("ascii").rstrip(b"=")
        return base64.b64decode(data + b"=" * (-len(data) % 4), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError):
        return None


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _latin1(text: str) -> bytes:
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return _utf8(text)


class Handler(PluginHandler):
    name = "hmac-auth"
    PRIORITY = 1030
    VERSION = "3.9.1"

    def __init__(self, config: Config, instance: PluginInstance, env: CompileEnv) -> None:
        super().__init__(config, instance, env)
        self.conf = config
        self.needs_body = config.validate_request_body
        self.algorithms = frozenset(config.algorithms)
        self.enforced = tuple(dict.fromkeys(config.enforce_headers))
        self.dates: dict[str, float | None] = {}  # Date header -> epoch seconds (recent ones)
        self.by_username: dict[str, tuple[Consumer, Mapping[str, Any], bytes]] = {}
        for consumer, credential in env.credentials("hmacauth_credentials"):
            username, secret = credential.get("username"), credential.get("secret")
            if isinstance(username, str) and isinstance(secret, str):
                self.by_username.setdefault(username, (consumer, credential, secret.encode()))
        self.anonymous = Anonymous(env, config.anonymous)
        www = www_authenticate("hmac", config.realm)
        self.unauthorized = failure("Unauthorized", www)
        self.date_required = failure(DATE_REQUIRED, www)
        self.not_valid = failure(SIGNATURE_NOT_VALID, www)
        self.not_same = failure(SIGNATURE_NOT_SAME, www)

    def access(self, ctx: RequestContext) -> None:
        run_authentication(ctx, self.anonymous, self._authenticate)
        return None

    def _clock_ok(self, ctx: RequestContext) -> bool:
        now = time.time()
        dates = self.dates
        for name in ("x-date", "date"):
            text = ctx.header(name)
            if text is None:
                continue
            if text in dates:
                sent = dates[text]
            else:
                sent = _request_time(text)
                if len(dates) >= _DATES_KEPT:
                    dates.clear()
                dates[text] = sent
            if sent is not None and abs(now - sent) <= self.conf.clock_skew:
                return True
        return False

    def _authenticate(self, ctx: RequestContext) -> Failure | None:
        authorization = ctx.header("authorization")
        proxy_authorization = ctx.header("proxy-authorization")
        if authorization is None and proxy_authorization is None:
            return self.unauthorized
        if not self._clock_ok(ctx):
            return self.date_required
        params = parse_authorization(proxy_authorization)
        if not params:
            params = parse_authorization(authorization)
            if self.conf.hide_credentials:
                ctx.clear_header("authorization")
        elif self.conf.hide_credentials:
            ctx.clear_header("proxy-authorization")
        if not params:
            return self.not_valid
        signed_headers = params["headers"].split(" ")
        if self.enforced and not set(self.enforced).issubset(signed_headers):
            return self.not_valid
        algorithm = params["algorithm"]
        if algorithm not in self.algorithms:
            return self.not_valid
        username = header_text(params["username"])
        record = self.by_username.get(username)
        if record is None:
            return self.not_valid
        consumer, credential, secret = record
        given = _b64decode(params["signature"])
        expected = hmac.new(
            secret, self._signing_string(ctx, signed_headers), _DIGESTS[algorithm]
        ).digest()
        if given is None or not hmac.compare_digest(expected, given):
            return self.not_same
        if self.conf.validate_request_body and not self._body_ok(ctx):
            return self.not_same
        ctx.authenticate(consumer, credential)
        ctx.set_header("X-Credential-Identifier", username)
        return None

    @staticmethod
    def _signing_string(ctx: RequestContext, signed_headers: list[str]) -> bytes:
        """The bytes the client signed: header values as received (the engine keeps them
        as latin-1 text), names, method and target as UTF-8."""
        path = getattr(ctx, "raw_path", None) or ctx.path
        query = ctx.raw_query
        request_uri = f"{path}?{query}" if query else path
        lines: list[bytes] = []
        for name in signed_headers:
            value = ctx.header(name) if name else None
            raw_name = _utf8(name)
            if value is not None:
                lines.append(raw_name + b": " + _latin1(value))
            elif name == "@request-target":
                lines.append(raw_name + b": " + _utf8(f"{ctx.method.lower()} {request_uri}"))
            elif name == "request-line":
                version = getattr(ctx, "http_version", None) or "1.1"
                lines.append(_utf8(f"{ctx.method} {request_uri} HTTP/{version}"))
            else:
                lines.append(raw_name + b":")
        return b"\n".join(lines)

    @staticmethod
    def _body_ok(ctx: RequestContext) -> bool:
        body = ctx.raw_body()
        received = ctx.header("digest")
        if received is None:
            return body == b""
        created = "SHA-256=" + base64.b64encode(hashlib.sha256(body).digest()).decode()
        return hmac.compare_digest(created.encode(), received.encode("latin-1", "replace"))
