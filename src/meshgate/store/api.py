"""The ``Store`` protocol: Kong entities kept as JSON documents, with revisions and a change feed.

The store knows nothing about entity schemas. It indexes only what callers hand it: the entity
``type`` (Kong's table name, e.g. ``"services"``, ``"keyauth_credentials"``), its ``id``, its
``tags``, its timestamps, and the unique keys the caller declares on every write, e.g.
``[("name", "svc-a")]`` for a service or ``[("cache_key", composite_key(...))]`` for a plugin.

Every committed transaction that changes something gets the next revision number; the changes
it made are readable with ``changes_since`` and the new revision is pushed to ``subscribe``
iterators of every store instance on the same database.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncGenerator, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Doc = dict[str, Any]
"""A full entity as JSON (what Kong's Admin API shows)."""

UniqueKeys = Sequence[tuple[str, str | None]]
"""``(key_name, value)`` pairs unique per entity type; a ``None`` value declares no key."""

Filter = Mapping[str, str | None]
"""Equality on doc fields by dotted path (``"name"``, ``"service.id"``); ``None`` = null/absent."""

TagsMode = Literal["and", "or"]
ChangeOp = Literal["insert", "update", "delete"]

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


def composite_key(*parts: str | None) -> str:
    """One unique-key value from several fields, e.g. a target's ``(upstream_id, target)``.

    ``None`` parts are kept distinct from empty strings, so a plugin's cache key
    ``(name, route, service, consumer)`` with unset scopes stays unambiguous: parts escape
    ``\\`` and ``|``, and ``None`` becomes a lone ``\\N`` no escaped part can spell.
    """
    return "|".join(
        "\\N" if part is None else part.replace("\\", "\\\\").replace("|", "\\|") for part in parts
    )


@dataclass(frozen=True, slots=True)
class Entity:
    """One stored entity row."""

    type: str
    id: str
    doc: Doc
    created_at: float
    updated_at: float
    tags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class EntityWrite:
    """One entity given to ``replace_all``; ``doc["id"]`` is generated when missing."""

    type: str
    doc: Doc
    unique_keys: UniqueKeys = ()


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a list; ``next_offset`` is ``None`` on the last page."""

    data: builtins.list[Doc]
    next_offset: str | None


@dataclass(frozen=True, slots=True)
class Change:
    """What one committed revision did to one entity (several changes share a revision)."""

    revision: int
    type: str
    id: str
    op: ChangeOp


@dataclass(frozen=True, slots=True)
class Dump:
    """Every entity, read consistently at ``revision`` (in insertion order)."""

    revision: int
    entities: builtins.list[Entity] = field(default_factory=builtins.list)


@dataclass(frozen=True, slots=True)
class AppliedMigration:
    """A row of the ``schema_migrations`` table."""

    version: int
    name: str
    applied_at: float


class StoreReader(Protocol):
    """Reads; inside a transaction they see the transaction's own writes."""

    async def get(self, entity_type: str, entity_id: str) -> Doc | None: ...

    async def get_by_key(self, entity_type: str, key_name: str, value: str) -> Doc | None: ...

    async def list(
        self,
        entity_type: str,
        *,
        size: int = DEFAULT_PAGE_SIZE,
        offset: str | None = None,
        tags: Sequence[str] | None = None,
        tags_mode: TagsMode = "and",
        filter: Filter | None = None,
    ) -> Page:
        """Entities in insertion order; pass ``next_offset`` back as ``offset`` for the next page.

        An offset is only valid for the same type, tags, tags_mode and filter (``InvalidOffset``).
        """
        ...


class Transaction(StoreReader, Protocol):
    """Writes. Each write returns the stored doc (with ``id`` filled in)."""

    async def insert(self, entity_type: str, doc: Doc, *, unique_keys: UniqueKeys) -> Doc:
        """Add a new entity; ``UniqueViolation`` (key ``"id"`` for the id) when taken."""
        ...

    async def upsert(
        self, entity_type: str, entity_id: str, doc: Doc, *, unique_keys: UniqueKeys
    ) -> Doc:
        """Insert or fully replace the entity ``entity_id``; its unique keys become ``unique_keys``."""
        ...

    async def update(
        self, entity_type: str, entity_id: str, doc: Doc, *, unique_keys: UniqueKeys
    ) -> Doc:
        """Fully replace an existing entity (``NotFound`` when absent); merging is the caller's."""
        ...

    async def delete(self, entity_type: str, entity_id: str) -> bool:
        """Remove one entity; ``False`` when it did not exist. Cascades are the caller's job."""
        ...

    async def delete_many(
        self,
        entity_type: str,
        *,
        ids: Iterable[str] | None = None,
        filter: Filter | None = None,
    ) -> builtins.list[str]:
        """Remove the entities matching ``ids`` and/or ``filter``; returns the removed ids."""
        ...


class Store(Transaction, Protocol):
    """A config database. Single writes on the store are one transaction each."""

    dialect: Literal["sqlite", "postgres"]

    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        """``async with store.transaction() as tx:`` — all writes commit together with one
        revision bump, or none do. Use ``tx``'s methods inside, not the store's."""
        ...

    async def replace_all(self, entities: Iterable[EntityWrite]) -> int:
        """Atomically make the stored entities exactly ``entities``; returns the revision.

        Unchanged docs are not rewritten, so the change log holds only real differences and an
        identical replace does not bump the revision.
        """
        ...

    async def revision(self) -> int: ...

    async def changes_since(self, revision: int) -> builtins.list[Change]:
        """Changes of the revisions after ``revision``, oldest first (``RevisionGone`` if pruned)."""
        ...

    def subscribe(self) -> AsyncGenerator[int, None]:
        """Yields the current revision at once, then each newer one (coalesced) as commits land,
        including commits made by other processes or nodes on the same database."""
        ...

    async def dump_all(self) -> Dump: ...

    async def close(self) -> None: ...

    # Hooks for ``meshgate.store.migrations``; not for other callers.
    async def applied_migrations(self) -> builtins.list[AppliedMigration]: ...

    async def apply_migration(self, version: int, name: str, statements: Sequence[str]) -> bool:
        """Run ``statements`` and record ``version`` in one transaction; ``False`` if already
        applied (checked under a lock, so concurrent starters apply each migration once)."""
        ...
