"""What the bundled authentication plugins share (not a plugin: the ``_`` keeps it out of
discovery): the ``anonymous`` fallback, Kong's logical OR/AND between auth plugins, the
``WWW-Authenticate`` value, header-text decoding and the secret index.

Kong's flow, followed by every auth plugin here: with ``anonymous`` set, a request that an
earlier auth plugin already authenticated (it has a credential) is left alone, and a failed
authentication falls back to the anonymous consumer (``X-Anonymous-Consumer: true``) instead
of a 401; without it, a failure ends the request with the plugin's 401.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from typing import Any, Generic, NamedTuple, TypeVar

from meshgate.proxy.filters.api import CompileEnv, RequestContext
from meshgate.snapshot import Consumer

T = TypeVar("T")


class Failure(NamedTuple):
    """An authentication failure: what ``ctx.exit`` is called with (built once per handler)."""

    status: int
    body: str | Mapping[str, Any] | None
    headers: Mapping[str, str] | None


def failure(message: str | Mapping[str, Any], www_authenticate: str | None) -> Failure:
    headers = {"WWW-Authenticate": www_authenticate} if www_authenticate else None
    return Failure(401, message, headers)


def www_authenticate(scheme: str, realm: str | None) -> str:
    """Kong's value: ``Key`` or ``Key realm="x"`` (and the same for Basic, Bearer, hmac)."""
    return f'{scheme} realm="{realm}"' if realm is not None else scheme


def find_consumer(env: CompileEnv, reference: str) -> Consumer | None:
    """The consumer whose id, else whose username, is ``reference`` (Kong's load_consumer)."""
    consumer = env.consumers_by_id().get(reference)
    if consumer is not None:
        return consumer
    for candidate in env.snapshot.consumers:
        if candidate.username == reference:
            return candidate
    return None


class Anonymous:
    """``config.anonymous`` (a consumer id or username) resolved once per snapshot."""

    __slots__ = ("consumer", "enabled", "reference")

    def __init__(self, env: CompileEnv, reference: str | None) -> None:
        self.reference = reference or None
        self.enabled = self.reference is not None
        self.consumer = find_consumer(env, self.reference) if self.reference else None

    def authenticate(self, ctx: RequestContext) -> None:
        if self.consumer is None:
            ctx.exit(500, f"anonymous consumer {self.reference} is configured but doesn't exist")
        ctx.authenticate(self.consumer, None)


def run_authentication(
    ctx: RequestContext,
    anonymous: Anonymous,
    authenticate: Callable[[RequestContext], Failure | None],
) -> None:
    """Kong's logical OR (``anonymous`` set) or AND between auth plugins around one attempt."""
    if anonymous.enabled:
        if ctx.credential is not None:
            return
        if authenticate(ctx) is not None:
            anonymous.authenticate(ctx)
        return
    failed = authenticate(ctx)
    if failed is not None:
        ctx.exit(failed.status, failed.body, failed.headers)


def header_text(value: str) -> str:
    """A header value as the client meant it: the engine decodes header bytes as latin-1;
    UTF-8 sent by the client is recovered (undecodable bytes kept as surrogates)."""
    if value.isascii():
        return value
    try:
        return value.encode("latin-1").decode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return value


def secret_bytes(value: str) -> bytes:
    return value.encode("utf-8", "surrogateescape")


class SecretIndex(Generic[T]):
    """Secret -> record.  The dict hashes strings with a per-process random key (SipHash),
    so probing it tells a client nothing about stored secrets' prefixes; the one candidate
    a lookup lands on is then confirmed with ``hmac.compare_digest``."""

    __slots__ = ("_by_secret",)

    def __init__(self) -> None:
        self._by_secret: dict[str, tuple[bytes, T]] = {}

    def __len__(self) -> int:
        return len(self._by_secret)

    def add(self, secret: str, record: T) -> None:
        self._by_secret.setdefault(secret, (secret_bytes(secret), record))

    def find(self, given: str) -> T | None:
        found = self._by_secret.get(given)
        if found is None or not hmac.compare_digest(found[0], secret_bytes(given)):
            return None
        return found[1]
