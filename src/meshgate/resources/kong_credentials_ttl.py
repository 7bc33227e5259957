"""Credential time-to-live (Kong's ``ttl`` on key-auth credentials), as pure functions.

A credential with ``ttl`` seconds expires ``ttl`` seconds after its ``created_at``; ``ttl``
absent, null or 0 never expires.  Kong then treats it as gone: the key authenticates nobody,
the Admin API no longer shows it (GET 404, lists leave it out), and a periodic cleanup
deletes the row.  The proxy checks the expiry itself on each request (no recompile needed);
these helpers serve the store purge and the Admin API's view (Kong shows ``ttl`` as the
seconds left).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

TTL_CREDENTIAL_KINDS: tuple[str, ...] = ("keyauth_credentials",)
"""Credential kinds with a ``ttl`` field (Kong's ``ttl = true`` DAOs that meshgate has)."""


def credential_expiry(doc: Mapping[str, Any]) -> float | None:
    """When the credential expires (epoch seconds), or None when it never does."""
    ttl = doc.get("ttl")
    created = doc.get("created_at")
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or ttl <= 0:
        return None
    if isinstance(created, bool) or not isinstance(created, int | float):
        return None
    return float(created) + float(ttl)


def is_expired(doc: Mapping[str, Any], now: float) -> bool:
    expiry = credential_expiry(doc)
    return expiry is not None and now >= expiry


def remaining_ttl(doc: Mapping[str, Any], now: float) -> int | None:
    """Whole seconds left (Kong's ``FLOOR(ttl - now)``, never below 0), None without a ttl."""
    expiry = credential_expiry(doc)
    return None if expiry is None else max(0, math.floor(expiry - now))


def expired_ids(docs: Iterable[Mapping[str, Any]], now: float) -> list[str]:
    """The ids of the expired credentials among ``docs``."""
    return [str(doc["id"]) for doc in docs if "id" in doc and is_expired(doc, now)]
