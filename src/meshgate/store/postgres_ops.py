"""PostgreSQL statements of the store, on one ``psycopg.AsyncConnection`` given by the caller.

Unique keys live in ``entity_keys`` under a primary key, so PostgreSQL itself enforces them
across nodes; a clash is turned into ``UniqueViolation`` naming the current holder. Each write
runs in a savepoint, so a failed write leaves the surrounding transaction usable.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any, Literal

import psycopg
from psycopg.types.json import Jsonb

from meshgate.store.api import AppliedMigration, Change, ChangeOp, Doc, Dump, Entity, Page
from meshgate.store.common import (
    CHANGE_RETENTION_REVISIONS,
    ChangeLog,
    ListQuery,
    PreparedEntity,
    plan_replace,
)
from meshgate.store.errors import InvalidQuery, NotFound, RevisionGone, UniqueViolation

CHANNEL = "meshgate_store"
"""LISTEN/NOTIFY channel; the payload is ``"<schema> <revision>"``."""

WriteMode = Literal["insert", "upsert", "update"]
Conditions = Sequence[tuple[tuple[str, ...], str | None]]
Conn = psycopg.AsyncConnection[Any]

_UPSERT_ENTITY = (
    "INSERT INTO entities (type, id, doc, tags, created_at, updated_at)"
    " VALUES (%s, %s, %s, %s, %s, %s)"
)
_ON_CONFLICT_REPLACE = (
    " ON CONFLICT (type, id) DO UPDATE SET doc = excluded.doc, tags = excluded.tags,"
    " created_at = excluded.created_at, updated_at = excluded.updated_at"
)


def filter_sql(conditions: Conditions) -> tuple[str, list[Any]]:
    """SQL ``AND ...`` clauses for a validated filter (see ``common.matches_filter``)."""
    clauses: list[str] = []
    params: list[Any] = []
    for path, value in conditions:
        if value is None:
            clauses.append(" AND doc #>> %s IS NULL")
            params.append(list(path))
        else:
            clauses.append(" AND doc #>> %s = %s")
            params += [list(path), value]
    return "".join(clauses), params


def _entity_row(entity: PreparedEntity) -> tuple[Any, ...]:
    return (
        entity.type,
        entity.id,
        Jsonb(entity.doc),
        entity.tags,
        entity.created_at,
        entity.updated_at,
    )


class PostgresOps:
    """The store's reads and writes on ``conn``; writes must run inside a transaction block."""

    def __init__(self, conn: Conn) -> None:
        self.conn = conn

    async def _one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        cursor = await self.conn.execute(sql, params)
        return await cursor.fetchone()

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> builtins.list[tuple[Any, ...]]:
        cursor = await self.conn.execute(sql, params)
        return await cursor.fetchall()

    # -- reads -------------------------------------------------------------------------------

    async def get(self, entity_type: str, entity_id: str) -> Doc | None:
        row = await self._one(
            "SELECT doc FROM entities WHERE type = %s AND id = %s", (entity_type, entity_id)
        )
        return None if row is None else dict(row[0])

    async def get_by_key(self, entity_type: str, key_name: str, value: str) -> Doc | None:
        row = await self._one(
            "SELECT e.doc FROM entity_keys k JOIN entities e ON e.type = k.type AND e.id = k.id"
            " WHERE k.type = %s AND k.key_name = %s AND k.value = %s",
            (entity_type, key_name, value),
        )
        return None if row is None else dict(row[0])

    async def list_page(self, query: ListQuery) -> Page:
        sql = "SELECT seq, doc FROM entities WHERE type = %s AND seq > %s"
        params: builtins.list[Any] = [query.entity_type, query.after_seq]
        if query.tags:
            sql += " AND tags @> %s" if query.tags_mode == "and" else " AND tags && %s"
            params.append(list(query.tags))
        where, filter_params = filter_sql(query.filter)
        sql += where + " ORDER BY seq LIMIT %s"
        params += [*filter_params, query.size + 1]
        rows = await self._all(sql, params)
        more = len(rows) > query.size
        rows = rows[: query.size]
        next_offset = query.offset_after(rows[-1][0]) if more else None
        return Page([dict(doc) for _seq, doc in rows], next_offset)

    async def revision(self) -> int:
        row = await self._one("SELECT revision FROM store_revision")
        assert row is not None
        return int(row[0])

    async def changes_since(self, revision: int) -> builtins.list[Change]:
        row = await self._one("SELECT pruned_through FROM store_revision")
        assert row is not None
        if revision < row[0]:
            raise RevisionGone(revision, int(row[0]))
        rows = await self._all(
            "SELECT revision, type, id, op FROM changes WHERE revision > %s ORDER BY revision, seq",
            (revision,),
        )
        return [Change(int(rev), etype, eid, _op(op)) for rev, etype, eid, op in rows]

    async def dump_all(self) -> Dump:
        """Call inside a REPEATABLE READ transaction for a consistent result."""
        revision = await self.revision()
        rows = await self._all(
            "SELECT type, id, doc, created_at, updated_at, tags FROM entities ORDER BY seq"
        )
        return Dump(
            revision,
            [Entity(t, i, dict(d), float(c), float(u), tuple(g)) for t, i, d, c, u, g in rows],
        )

    async def applied_migrations(self) -> builtins.list[AppliedMigration]:
        row = await self._one("SELECT to_regclass('schema_migrations')")
        if row is None or row[0] is None:
            return []
        rows = await self._all(
            "SELECT version, name, applied_at FROM schema_migrations ORDER BY version"
        )
        return [AppliedMigration(int(v), n, float(a)) for v, n, a in rows]

    # -- writes ------------------------------------------------------------------------------

    async def write(self, entity: PreparedEntity, mode: WriteMode, changes: ChangeLog) -> Doc:
        try:
            async with self.conn.transaction():
                exists = await self._one(
                    "SELECT 1 FROM entities WHERE type = %s AND id = %s FOR UPDATE",
                    (entity.type, entity.id),
                )
                if exists is None and mode == "update":
                    raise NotFound(entity.type, entity.id)
                if exists is not None and mode == "insert":
                    raise UniqueViolation(entity.type, "id", entity.id, entity.id)
                await self.conn.execute(
                    "DELETE FROM entity_keys WHERE type = %s AND id = %s", (entity.type, entity.id)
                )
                suffix = "" if mode == "insert" else _ON_CONFLICT_REPLACE
                await self.conn.execute(_UPSERT_ENTITY + suffix, _entity_row(entity))
                if entity.keys:
                    names, values = zip(*entity.keys, strict=True)
                    await self.conn.execute(
                        "INSERT INTO entity_keys (type, key_name, value, id)"
                        " SELECT %s, k, v, %s FROM unnest(%s::text[], %s::text[]) AS u(k, v)",
                        (entity.type, entity.id, list(names), list(values)),
                    )
        except psycopg.errors.UniqueViolation as exc:
            raise await self._explain_clash(entity) from exc
        changes.record(entity.type, entity.id, "insert" if exists is None else "update")
        return entity.doc

    async def _explain_clash(self, entity: PreparedEntity) -> UniqueViolation:
        """Who holds what a failed write wanted (read after the clashing commit, so visible)."""
        for key_name, value in entity.keys:
            holder = await self._one(
                "SELECT id FROM entity_keys WHERE type = %s AND key_name = %s AND value = %s",
                (entity.type, key_name, value),
            )
            if holder is not None and holder[0] != entity.id:
                return UniqueViolation(entity.type, key_name, value, holder[0])
        return UniqueViolation(entity.type, "id", entity.id, entity.id)

    async def delete_many(
        self,
        entity_type: str,
        ids: Sequence[str] | None,
        conditions: Conditions,
        changes: ChangeLog,
    ) -> builtins.list[str]:
        if ids is None and not conditions:
            raise InvalidQuery("delete_many needs ids or a filter")
        where, params = filter_sql(conditions)
        sql = "DELETE FROM entities WHERE type = %s" + where
        if ids is not None:
            sql += " AND id = ANY(%s)"
            params.append(list(ids))
        rows = await self._all(sql + " RETURNING id", [entity_type, *params])
        deleted = [row[0] for row in rows]
        await self.conn.execute(
            "DELETE FROM entity_keys WHERE type = %s AND id = ANY(%s)", (entity_type, deleted)
        )
        for entity_id in deleted:
            changes.record(entity_type, entity_id, "delete")
        return deleted

    async def replace_all(self, wanted: Sequence[Any], changes: ChangeLog) -> None:
        # Concurrent writers wait; readers do not. Makes "exactly these entities" hold at commit.
        await self.conn.execute("LOCK TABLE entities IN EXCLUSIVE MODE")
        existing = {
            (etype, eid): dict(doc)
            for etype, eid, doc in await self._all("SELECT type, id, doc FROM entities")
        }
        plan = plan_replace(existing, wanted)
        await self.conn.execute("DELETE FROM entity_keys")
        if plan.deletes:
            types, ids = zip(*plan.deletes, strict=True)
            await self.conn.execute(
                "DELETE FROM entities e USING unnest(%s::text[], %s::text[]) AS d(type, id)"
                " WHERE e.type = d.type AND e.id = d.id",
                (list(types), list(ids)),
            )
        if plan.writes:
            async with self.conn.cursor() as cursor:
                await cursor.executemany(
                    _UPSERT_ENTITY + _ON_CONFLICT_REPLACE, [_entity_row(e) for e in plan.writes]
                )
        if plan.keys:
            columns = [list(column) for column in zip(*plan.keys, strict=True)]
            await self.conn.execute(
                "INSERT INTO entity_keys (type, key_name, value, id)"
                " SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[])",
                columns,
            )
        changes.ops.update(plan.changes.ops)

    async def finish(self, changes: ChangeLog) -> int | None:
        """Last statements of a transaction: bump the revision, log changes, notify listeners."""
        if not changes.ops:
            return None
        # The row lock taken here is held until COMMIT, so revisions commit in order.
        row = await self._one(
            "UPDATE store_revision SET revision = revision + 1 RETURNING revision"
        )
        assert row is not None
        revision = int(row[0])
        columns = [list(column) for column in zip(*changes.rows(revision), strict=True)]
        await self.conn.execute(
            "INSERT INTO changes (revision, type, id, op)"
            " SELECT * FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[])",
            columns,
        )
        horizon = revision - CHANGE_RETENTION_REVISIONS
        if horizon > 0:
            await self.conn.execute("DELETE FROM changes WHERE revision <= %s", (horizon,))
            await self.conn.execute(
                "UPDATE store_revision SET pruned_through = greatest(pruned_through, %s)",
                (horizon,),
            )
        await self.conn.execute(
            "SELECT pg_notify(%s, current_schema() || ' ' || %s)", (CHANNEL, str(revision))
        )
        return revision


def _op(op: str) -> ChangeOp:
    if op == "insert":
        return "insert"
    if op == "delete":
        return "delete"
    return "update"
