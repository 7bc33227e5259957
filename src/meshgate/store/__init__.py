"""The config store: Kong entities as JSON documents, revisions and a change feed.

``await open_store(url)`` opens (and migrates) a store:

- ``sqlite:///abs/path/file.db``, ``sqlite://relative/file.db`` or ``sqlite://:memory:``
- ``postgresql://user@host:port/db`` (or ``postgres://``); libpq parameters such as
  ``?options=-csearch_path%3Dmyschema`` pick a schema.
"""

from __future__ import annotations

from meshgate.store.api import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    AppliedMigration,
    Change,
    Doc,
    Dump,
    Entity,
    EntityWrite,
    Filter,
    Page,
    Store,
    Transaction,
    UniqueKeys,
    composite_key,
)
from meshgate.store.errors import (
    ForeignKeyMissing,
    InvalidOffset,
    InvalidQuery,
    NotFound,
    RevisionGone,
    StoreError,
    UniqueViolation,
)
from meshgate.store.migrations import migrate_up, migration_status

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "AppliedMigration",
    "Change",
    "Doc",
    "Dump",
    "Entity",
    "EntityWrite",
    "Filter",
    "ForeignKeyMissing",
    "InvalidOffset",
    "InvalidQuery",
    "NotFound",
    "Page",
    "RevisionGone",
    "Store",
    "StoreError",
    "Transaction",
    "UniqueKeys",
    "UniqueViolation",
    "composite_key",
    "migrate_up",
    "migration_status",
    "open_store",
]


async def open_store(url: str, *, migrate: bool = True) -> Store:
    """Connect to the store at ``url``; with ``migrate`` (the default) apply pending migrations.

    ``migrate=False`` is for ``meshgate migrations status``, which must not change the schema.
    """
    store: Store
    if url.startswith("sqlite://"):
        from meshgate.store.sqlite_impl import SqliteStore

        store = await SqliteStore.open(sqlite_path(url))
    elif url.startswith(("postgresql://", "postgres://")):
        from meshgate.store.postgres_impl import PostgresStore

        store = await PostgresStore.open(url)
    else:
        raise ValueError(f"unsupported store URL {url!r}: use sqlite://... or postgresql://...")
    if migrate:
        try:
            await migrate_up(store)
        except BaseException:
            await store.close()
            raise
    return store


def sqlite_path(url: str) -> str:
    """``sqlite:///abs.db`` → ``/abs.db``; ``sqlite://rel.db`` → ``rel.db``; memory stays."""
    rest = url.removeprefix("sqlite://")
    if rest in ("", ":memory:", "/:memory:"):
        return ":memory:"
    return rest
