"""Schema migrations of both store backends, recorded in a ``schema_migrations`` table.

``open_store`` runs ``migrate_up`` on start; ``meshgate migrations up|status`` calls the same
functions. Each migration runs in its own transaction together with its ``schema_migrations``
row, under a lock, so concurrent starters on one database apply it exactly once. Migrations are
append-only: never edit a released one, add the next version instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from meshgate.store.api import Store


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sqlite: Sequence[str]
    postgres: Sequence[str]

    def statements(self, dialect: str) -> Sequence[str]:
        return self.sqlite if dialect == "sqlite" else self.postgres


@dataclass(frozen=True, slots=True)
class MigrationState:
    """One known migration and whether (and when) it ran on this database."""

    version: int
    name: str
    applied_at: float | None

    @property
    def applied(self) -> bool:
        return self.applied_at is not None


_INITIAL_SQLITE = (
    """CREATE TABLE entities (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        type TEXT NOT NULL,
        id TEXT NOT NULL,
        doc TEXT NOT NULL,
        tags TEXT NOT NULL DEFAULT '[]',
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        UNIQUE (type, id))""",
    "CREATE INDEX entities_type_seq ON entities (type, seq)",
    """CREATE TABLE entity_keys (
        type TEXT NOT NULL,
        key_name TEXT NOT NULL,
        value TEXT NOT NULL,
        id TEXT NOT NULL,
        PRIMARY KEY (type, key_name, value))""",
    "CREATE INDEX entity_keys_owner ON entity_keys (type, id)",
    """CREATE TABLE changes (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        revision INTEGER NOT NULL,
        type TEXT NOT NULL,
        id TEXT NOT NULL,
        op TEXT NOT NULL)""",
    "CREATE INDEX changes_revision ON changes (revision)",
    """CREATE TABLE store_revision (
        singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
        revision INTEGER NOT NULL,
        pruned_through INTEGER NOT NULL)""",
    "INSERT INTO store_revision VALUES (1, 0, 0)",
)

_INITIAL_POSTGRES = (
    """CREATE TABLE entities (
        seq bigint GENERATED ALWAYS AS IDENTITY,
        type text NOT NULL,
        id text NOT NULL,
        doc jsonb NOT NULL,
        tags text[] NOT NULL DEFAULT '{}',
        created_at double precision NOT NULL,
        updated_at double precision NOT NULL,
        PRIMARY KEY (type, id))""",
    "CREATE INDEX entities_type_seq ON entities (type, seq)",
    "CREATE INDEX entities_tags ON entities USING gin (tags)",
    """CREATE TABLE entity_keys (
        type text NOT NULL,
        key_name text NOT NULL,
        value text NOT NULL,
        id text NOT NULL,
        PRIMARY KEY (type, key_name, value))""",
    "CREATE INDEX entity_keys_owner ON entity_keys (type, id)",
    """CREATE TABLE changes (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        revision bigint NOT NULL,
        type text NOT NULL,
        id text NOT NULL,
        op text NOT NULL)""",
    "CREATE INDEX changes_revision ON changes (revision)",
    """CREATE TABLE store_revision (
        singleton int PRIMARY KEY CHECK (singleton = 1),
        revision bigint NOT NULL,
        pruned_through bigint NOT NULL)""",
    "INSERT INTO store_revision VALUES (1, 0, 0)",
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "initial: entities, unique keys, change log, revision",
        _INITIAL_SQLITE,
        _INITIAL_POSTGRES,
    ),
)


async def migrate_up(store: Store) -> list[MigrationState]:
    """Apply every pending migration in order; returns the ones this call applied."""
    done = {applied.version for applied in await store.applied_migrations()}
    applied_now: list[MigrationState] = []
    for migration in MIGRATIONS:
        if migration.version in done:
            continue
        if await store.apply_migration(
            migration.version, migration.name, migration.statements(store.dialect)
        ):
            applied_now.append(MigrationState(migration.version, migration.name, 0.0))
    if applied_now:
        by_version = {m.version: m for m in await store.applied_migrations()}
        applied_now = [
            MigrationState(s.version, s.name, by_version[s.version].applied_at) for s in applied_now
        ]
    return applied_now


async def migration_status(store: Store) -> list[MigrationState]:
    """Every known migration with its ``applied_at`` (``None`` when pending), plus any applied
    version this code does not know (a newer meshgate migrated the database)."""
    applied = {m.version: m for m in await store.applied_migrations()}
    states = [
        MigrationState(
            m.version, m.name, applied[m.version].applied_at if m.version in applied else None
        )
        for m in MIGRATIONS
    ]
    known = {m.version for m in MIGRATIONS}
    states += [
        MigrationState(m.version, m.name, m.applied_at)
        for version, m in sorted(applied.items())
        if version not in known
    ]
    return states


def pending(states: Sequence[MigrationState]) -> list[MigrationState]:
    return [state for state in states if not state.applied]
