"""Kong's ``ttl`` option on credential writes, and how the Admin API shows such credentials.

Kong takes ``ttl`` out of the body of a write as an *option* (kong/api/endpoints.lua
``extract_options``): on an entity whose schema has ``ttl = true`` (key-auth here) it must be
an integer from 0 to 100000000 (``DAO_MAX_TTL``), on any other entity it is refused, both as
``invalid options`` (400, code 11).  The credential then expires ``ttl`` seconds after that
write (kong/db/strategies/postgres/init.lua ``get_ttl_value``: ``created_at + ttl`` on insert,
``now + ttl`` on update); ``0`` means never.  A write without ``ttl`` keeps the expiry on
PATCH and clears it on PUT, as Kong's update/upsert statements do.

Reads see what Kong's ``ttl_select_where`` lets through: an expired credential is gone (GET
404, left out of lists) before any purge deletes the row, and ``ttl`` shows the whole seconds
left, ``FLOOR(expiry - now)``, or null when it never expires.

The store keeps meshgate's form: ``ttl`` counted from ``created_at`` (what the proxy and the
purge read), so "now + ttl" on an update is stored as ``ttl + (now - created_at)``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from meshgate.controlplane.admin_api.errors import INVALID_OPTIONS, AdminError, dao_error
from meshgate.controlplane.admin_api.registry import EntitySpec
from meshgate.resources.kong_credentials_ttl import (
    TTL_CREDENTIAL_KINDS,
    is_expired,
    remaining_ttl,
)
from meshgate.store import Doc, Transaction

MAX_TTL = 100_000_000  # Kong's DAO_MAX_TTL


def has_ttl(spec: EntitySpec) -> bool:
    return spec.store_type in TTL_CREDENTIAL_KINDS


def _invalid_ttl(reason: str) -> AdminError:
    return dao_error(400, INVALID_OPTIONS, f"invalid option (ttl: {reason})", {"ttl": reason})


def take_ttl_option(spec: EntitySpec, body: Mapping[str, Any]) -> tuple[dict[str, Any], int | None]:
    """``body`` without ``ttl``, and the ttl it asked for (None: not given).

    A form body's ``"10"`` counts as 10 (Kong's ``tonumber``); null counts as 0 (no expiry).
    """
    rest = dict(body)
    if "ttl" not in rest:
        return rest, None
    value = rest.pop("ttl")
    if not has_ttl(spec):
        raise _invalid_ttl(f"cannot be used with '{spec.store_type}'")
    if value is None:
        return rest, 0
    if isinstance(value, str):
        try:
            value = float(value) if value.strip() else value
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _invalid_ttl(f"must be an integer between 0 and {MAX_TTL}")
    if value != int(value) or not 0 <= value <= MAX_TTL:
        raise _invalid_ttl(f"must be an integer between 0 and {MAX_TTL}")
    return rest, int(value)


def stored_ttl(given: int, existing: Mapping[str, Any] | None, now: float) -> int | None:
    """What to store for a write that asked for ``given`` seconds: expiry ``now + given``
    counted from the credential's ``created_at`` (kept from ``existing`` on update)."""
    if given == 0:
        return None
    created = existing.get("created_at") if existing is not None else None
    if isinstance(created, bool) or not isinstance(created, int | float):
        return given
    return given + max(0, int(now) - int(created))


def visible(spec: EntitySpec, doc: Mapping[str, Any], now: float | None = None) -> bool:
    """False for a credential whose ttl has run out (Kong no longer returns it)."""
    if not has_ttl(spec):
        return True
    return not is_expired(doc, time.time() if now is None else now)


def shown(spec: EntitySpec, doc: Doc, now: float | None = None) -> Doc:
    """``doc`` with ``ttl`` as Kong shows it: whole seconds left, or null."""
    if not has_ttl(spec):
        return doc
    left = remaining_ttl(doc, time.time() if now is None else now)
    return {**doc, "ttl": left}


async def drop_expired_holders(tx: Transaction, spec: EntitySpec, doc: Mapping[str, Any]) -> None:
    """Delete expired credentials still holding ``doc``'s id or unique keys (the purge has not
    reached them yet), so a write does not collide with something the API says is gone."""
    if not has_ttl(spec):
        return
    now = time.time()
    holders: list[Doc] = []
    same_id = await tx.get(spec.store_type, str(doc["id"]))
    if same_id is not None:
        holders.append(same_id)
    for key_name, value in spec.unique_keys(dict(doc)):
        if value is not None:
            holder = await tx.get_by_key(spec.store_type, key_name, value)
            if holder is not None:
                holders.append(holder)
    expired = {str(h["id"]) for h in holders if is_expired(h, now)}
    for holder_id in sorted(expired):
        await tx.delete(spec.store_type, holder_id)
