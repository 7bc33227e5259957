"""Delete expired credentials from the store (Kong's ttl cleanup), now and then.

``await purge_expired_credentials(store)`` deletes every credential whose ``ttl`` has run
out, in one write, and returns their ids; the change feed then drops them from the running
config.  ``run_ttl_purge(store, interval)`` repeats that until cancelled (``meshgate run``
starts it when the store is writable).  Until the purge runs, the proxy already refuses an
expired key by itself, so the interval only bounds how long the row lingers.  Several nodes
on one database may purge at once: deleting an id that is already gone is harmless.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from meshgate.resources.kong_credentials_ttl import TTL_CREDENTIAL_KINDS, expired_ids
from meshgate.store import MAX_PAGE_SIZE, Store

DEFAULT_PURGE_INTERVAL = 60.0

_log = logging.getLogger("meshgate.ttl")


async def purge_expired_credentials(
    store: Store, now: Callable[[], float] = time.time
) -> list[str]:
    """Delete the expired credentials; returns the deleted ids."""
    moment = now()
    found: dict[str, list[str]] = {}
    for kind in TTL_CREDENTIAL_KINDS:
        offset: str | None = None
        while True:
            page = await store.list(kind, size=MAX_PAGE_SIZE, offset=offset)
            found.setdefault(kind, []).extend(expired_ids(page.data, moment))
            offset = page.next_offset
            if offset is None:
                break
    if not any(found.values()):
        return []
    deleted: list[str] = []
    async with store.transaction() as tx:
        for kind, ids in found.items():
            if ids:
                deleted += await tx.delete_many(kind, ids=ids)
    return deleted


async def run_ttl_purge(store: Store, interval: float = DEFAULT_PURGE_INTERVAL) -> None:
    """Purge at once, then every ``interval`` seconds, until cancelled; errors are logged."""
    while True:
        try:
            deleted = await purge_expired_credentials(store)
        except Exception as exc:  # a database hiccup must not end the purge loop
            _log.warning("expired credential purge failed, will retry: %s", exc)
        else:
            if deleted:
                _log.info("purged %d expired credential(s)", len(deleted))
        await asyncio.sleep(interval)
