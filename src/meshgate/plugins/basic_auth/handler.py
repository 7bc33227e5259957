"""basic-auth: read ``username:password`` from ``Proxy-Authorization`` then ``Authorization``
(``Basic <base64>``), find the ``basicauth_credentials`` of that username and check the
password (Kong 3.9's behaviour, messages and PRIORITY 1100).

Passwords are stored hashed as Kong stores them: hex SHA-1 of ``password .. consumer_id``
(the Admin API and ``_transform`` imports hash them; a declarative file with
``_transform: false`` must carry such hashes).  The hash of the given password is compared in
constant time.  Every failure is 401 "Unauthorized" with ``WWW-Authenticate: Basic
realm="<realm>"``; the credential identifier sent upstream is the username, as Kong's.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping
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

_BASIC = re.compile(r"\s*[Bb]asic\s*(.+)")
# the longest base64 accepted in a header (a larger one is refused before decoding)
_MAX_ENCODED = 16 * 1024


def hash_password(password: bytes, consumer_id: str) -> str:
    """Kong's basic-auth hash: SHA-1 of the password salted with the consumer id, in hex."""
    return hashlib.sha1(password + consumer_id.encode(), usedforsecurity=False).hexdigest()


def parse_basic(value: str) -> tuple[str, bytes] | None:
    """``(username, password)`` from a ``Basic`` header value, or None."""
    match = _BASIC.search(value)
    if match is None:
        return None
    encoded = match.group(1).strip()
    if len(encoded) > _MAX_ENCODED:
        return None
    try:
        decoded = base64.b64decode(encoded.encode("latin-1"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return None
    username, colon, password = decoded.partition(b":")
    if not colon or not username:
        return None
    return username.decode("utf-8", "surrogateescape"), password


class Handler(PluginHandler):
    name = "basic-auth"
    PRIORITY = 1100
    VERSION = "3.9.1"

    def __init__(self, config: Config, instance: PluginInstance, env: CompileEnv) -> None:
        super().__init__(config, instance, env)
        self.hide = config.hide_credentials
        self.by_username: dict[str, tuple[Consumer, Mapping[str, Any], bytes]] = {}
        for consumer, credential in env.credentials("basicauth_credentials"):
            username, password = credential.get("username"), credential.get("password")
            if isinstance(username, str) and isinstance(password, str):
                self.by_username.setdefault(
                    username, (consumer, credential, password.lower().encode())
                )
        self.anonymous = Anonymous(env, config.anonymous)
        self.unauthorized = failure("Unauthorized", www_authenticate("Basic", f"{config.realm}"))

    def access(self, ctx: RequestContext) -> None:
        run_authentication(ctx, self.anonymous, self._authenticate)
        return None

    def _given(self, ctx: RequestContext, header: str) -> tuple[str, bytes] | None:
        value = ctx.header(header)
        if value is None:
            return None
        if self.hide:
            ctx.clear_header(header)
        return parse_basic(header_text(value))

    def _authenticate(self, ctx: RequestContext) -> Failure | None:
        if ctx.header("authorization") is None and ctx.header("proxy-authorization") is None:
            return self.unauthorized
        given = self._given(ctx, "proxy-authorization")
        record = self.by_username.get(given[0]) if given is not None else None
        if record is None:
            given = self._given(ctx, "authorization")
            if given is None:
                return self.unauthorized
            record = self.by_username.get(given[0])
        if record is None or given is None:
            return self.unauthorized
        consumer, credential, stored = record
        digest = hash_password(given[1], consumer.id).encode()
        if not hmac.compare_digest(digest, stored):
            return self.unauthorized
        ctx.authenticate(consumer, credential)
        ctx.set_header("X-Credential-Identifier", given[0])
        return None
