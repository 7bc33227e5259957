"""Synchronous SQLite statements of the store; only ever run on the store's own thread."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal, TypeVar

from meshgate.store.api import AppliedMigration, Change, ChangeOp, Doc, Dump, Entity, Page
from meshgate.store.common import (
    CHANGE_RETENTION_REVISIONS,
    ChangeLog,
    ListQuery,
    PreparedEntity,
    plan_replace,
)
from meshgate.store.errors import InvalidQuery, NotFound, RevisionGone, UniqueViolation

T = TypeVar("T")
WriteMode = Literal["insert", "upsert", "update"]
Conditions = Sequence[tuple[tuple[str, ...], str | None]]

_ID_CHUNK = 500  # stays far below SQLite's limit on bound parameters


def connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=10.0, isolation_level=None, check_same_thread=False)
    _use_wal(conn)
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def _use_wal(conn: sqlite3.Connection, attempts: int = 100) -> None:
    """Switch to WAL.  Two openers of a new file race for the switch, and SQLite answers the
    loser "database is locked" at once, without its busy timeout: try again shortly."""
    for attempt in range(attempts):
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.01)


def _json_path(path: tuple[str, ...]) -> str:
    return "$" + "".join(f'."{segment}"' for segment in path)


def filter_sql(conditions: Conditions) -> tuple[str, list[Any]]:
    """SQL ``AND ...`` clauses for a validated filter (see ``common.matches_filter``)."""
    clauses: list[str] = []
    params: list[Any] = []
    for path, value in conditions:
        json_path = _json_path(path)
        if value is None:
            clauses.append(" AND coalesce(json_type(doc, ?), 'null') = 'null'")
            params.append(json_path)
        else:
            clauses.append(
                " AND (CASE json_type(doc, ?) WHEN 'text' THEN json_extract(doc, ?)"
                " WHEN 'null' THEN NULL ELSE doc -> ? END) = ?"
            )
            params += [json_path, json_path, json_path, value]
    return "".join(clauses), params


class SqliteOps:
    """Every store operation as plain blocking calls on one connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    # -- reads -------------------------------------------------------------------------------

    def get(self, entity_type: str, entity_id: str) -> Doc | None:
        row = self.conn.execute(
            "SELECT doc FROM entities WHERE type = ? AND id = ?", (entity_type, entity_id)
        ).fetchone()
        return None if row is None else _load(row[0])

    def get_by_key(self, entity_type: str, key_name: str, value: str) -> Doc | None:
        row = self.conn.execute(
            "SELECT e.doc FROM entity_keys k JOIN entities e ON e.type = k.type AND e.id = k.id"
            " WHERE k.type = ? AND k.key_name = ? AND k.value = ?",
            (entity_type, key_name, value),
        ).fetchone()
        return None if row is None else _load(row[0])

    def list_page(self, query: ListQuery) -> Page:
        sql = "SELECT seq, doc FROM entities WHERE type = ? AND seq > ?"
        params: list[Any] = [query.entity_type, query.after_seq]
        if query.tags:
            marks = ",".join("?" * len(query.tags))
            if query.tags_mode == "and":
                sql += (
                    " AND (SELECT count(DISTINCT j.value) FROM json_each(entities.tags) j"
                    f" WHERE j.value IN ({marks})) = ?"
                )
                params += [*query.tags, len(query.tags)]
            else:
                sql += (
                    " AND EXISTS (SELECT 1 FROM json_each(entities.tags) j"
                    f" WHERE j.value IN ({marks}))"
                )
                params += query.tags
        where, filter_params = filter_sql(query.filter)
        sql += where + " ORDER BY seq LIMIT ?"
        params += [*filter_params, query.size + 1]
        rows = self.conn.execute(sql, params).fetchall()
        more = len(rows) > query.size
        rows = rows[: query.size]
        next_offset = query.offset_after(rows[-1][0]) if more else None
        return Page([_load(doc) for _seq, doc in rows], next_offset)

    def revision(self) -> int:
        return int(self.conn.execute("SELECT revision FROM store_revision").fetchone()[0])

    def changes_since(self, revision: int) -> list[Change]:
        (pruned_through,) = self.conn.execute(
            "SELECT pruned_through FROM store_revision"
        ).fetchone()
        if revision < pruned_through:
            raise RevisionGone(revision, pruned_through)
        rows = self.conn.execute(
            "SELECT revision, type, id, op FROM changes WHERE revision > ? ORDER BY revision, seq",
            (revision,),
        ).fetchall()
        return [Change(int(rev), etype, eid, _op(op)) for rev, etype, eid, op in rows]

    def dump_all(self) -> Dump:
        self.conn.execute("BEGIN")
        try:
            revision = self.revision()
            rows = self.conn.execute(
                "SELECT type, id, doc, created_at, updated_at, tags FROM entities ORDER BY seq"
            ).fetchall()
        finally:
            self.conn.execute("COMMIT")
        entities = [
            Entity(etype, eid, _load(doc), created, updated, tuple(json.loads(tags)))
            for etype, eid, doc, created, updated, tags in rows
        ]
        return Dump(revision, entities)

    # -- transactions ------------------------------------------------------------------------

    def begin(self) -> None:
        if self.conn.in_transaction:  # a rollback that never ran (e.g. cancelled)
            self.conn.execute("ROLLBACK")
        self.conn.execute("BEGIN IMMEDIATE")

    def rollback(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    def commit(self, changes: ChangeLog) -> int | None:
        """Commit; bumps the revision and logs the changes when there are any."""
        revision: int | None = None
        if changes.ops:
            revision = int(
                self.conn.execute(
                    "UPDATE store_revision SET revision = revision + 1 RETURNING revision"
                ).fetchone()[0]
            )
            self.conn.executemany(
                "INSERT INTO changes (revision, type, id, op) VALUES (?, ?, ?, ?)",
                changes.rows(revision),
            )
            self._prune(revision)
        self.conn.execute("COMMIT")
        return revision

    def _prune(self, revision: int) -> None:
        horizon = revision - CHANGE_RETENTION_REVISIONS
        if horizon > 0:
            self.conn.execute("DELETE FROM changes WHERE revision <= ?", (horizon,))
            self.conn.execute(
                "UPDATE store_revision SET pruned_through = max(pruned_through, ?)", (horizon,)
            )

    def atomic(self, work: Callable[[ChangeLog], T]) -> tuple[T, int | None]:
        """Run ``work`` in its own transaction; returns its result and the new revision."""
        self.begin()
        changes = ChangeLog()
        try:
            result = work(changes)
            return result, self.commit(changes)
        except BaseException:
            self.rollback()
            raise

    def write(self, entity: PreparedEntity, mode: WriteMode, changes: ChangeLog) -> Doc:
        exists = (
            self.conn.execute(
                "SELECT 1 FROM entities WHERE type = ? AND id = ?", (entity.type, entity.id)
            ).fetchone()
            is not None
        )
        if exists and mode == "insert":
            raise UniqueViolation(entity.type, "id", entity.id, entity.id)
        if not exists and mode == "update":
            raise NotFound(entity.type, entity.id)
        for key_name, value in entity.keys:
            row = self.conn.execute(
                "SELECT id FROM entity_keys WHERE type = ? AND key_name = ? AND value = ?",
                (entity.type, key_name, value),
            ).fetchone()
            if row is not None and row[0] != entity.id:
                raise UniqueViolation(entity.type, key_name, value, row[0])
        self.conn.execute(
            "DELETE FROM entity_keys WHERE type = ? AND id = ?", (entity.type, entity.id)
        )
        self._put_entities([entity])
        self._put_keys((entity.type, name, value, entity.id) for name, value in entity.keys)
        changes.record(entity.type, entity.id, "update" if exists else "insert")
        return entity.doc

    def _put_entities(self, entities: Iterable[PreparedEntity]) -> None:
        self.conn.executemany(
            "INSERT INTO entities (type, id, doc, tags, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (type, id) DO UPDATE SET doc = excluded.doc,"
            " tags = excluded.tags, created_at = excluded.created_at,"
            " updated_at = excluded.updated_at",
            [
                (e.type, e.id, e.doc_json(), json.dumps(e.tags), e.created_at, e.updated_at)
                for e in entities
            ],
        )

    def _put_keys(self, keys: Iterable[tuple[str, str, str, str]]) -> None:
        self.conn.executemany(
            "INSERT INTO entity_keys (type, key_name, value, id) VALUES (?, ?, ?, ?)", keys
        )

    def delete_many(
        self,
        entity_type: str,
        ids: Sequence[str] | None,
        conditions: Conditions,
        changes: ChangeLog,
    ) -> list[str]:
        if ids is None and not conditions:
            raise InvalidQuery("delete_many needs ids or a filter")
        where, params = filter_sql(conditions)
        sql = "SELECT id FROM entities WHERE type = ?" + where
        found: list[str] = []
        if ids is None:
            found = [row[0] for row in self.conn.execute(sql, [entity_type, *params])]
        for start in range(0, len(ids or ()), _ID_CHUNK):
            chunk = list(ids or ())[start : start + _ID_CHUNK]
            marks = ",".join("?" * len(chunk))
            found += [
                row[0]
                for row in self.conn.execute(
                    f"{sql} AND id IN ({marks})", [entity_type, *params, *chunk]
                )
            ]
        found = list(dict.fromkeys(found))
        pairs = [(entity_type, entity_id) for entity_id in found]
        self.conn.executemany("DELETE FROM entities WHERE type = ? AND id = ?", pairs)
        self.conn.executemany("DELETE FROM entity_keys WHERE type = ? AND id = ?", pairs)
        for entity_id in found:
            changes.record(entity_type, entity_id, "delete")
        return found

    def replace_all(self, wanted: Sequence[Any]) -> int:
        def work(changes: ChangeLog) -> None:
            existing = {
                (etype, eid): _load(doc)
                for etype, eid, doc in self.conn.execute("SELECT type, id, doc FROM entities")
            }
            plan = plan_replace(existing, wanted)
            self.conn.execute("DELETE FROM entity_keys")
            self.conn.executemany("DELETE FROM entities WHERE type = ? AND id = ?", plan.deletes)
            self._put_entities(plan.writes)
            self._put_keys(plan.keys)
            changes.ops.update(plan.changes.ops)

        _none, revision = self.atomic(work)
        return self.revision() if revision is None else revision

    # -- migrations --------------------------------------------------------------------------

    def applied_migrations(self) -> list[AppliedMigration]:
        exists = self.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
        ).fetchone()
        if exists is None:
            return []
        rows = self.conn.execute(
            "SELECT version, name, applied_at FROM schema_migrations ORDER BY version"
        ).fetchall()
        return [AppliedMigration(int(v), n, float(at)) for v, n, at in rows]

    def apply_migration(self, version: int, name: str, statements: Sequence[str]) -> bool:
        self.begin()
        try:
            self.conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
                " name TEXT NOT NULL, applied_at REAL NOT NULL)"
            )
            done = self.conn.execute(
                "SELECT 1 FROM schema_migrations WHERE version = ?", (version,)
            ).fetchone()
            if done is None:
                for statement in statements:
                    self.conn.execute(statement)
                self.conn.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, ?)", (version, name, time.time())
                )
            self.conn.execute("COMMIT")
            return done is None
        except BaseException:
            self.rollback()
            raise


def _load(doc: str) -> Doc:
    loaded: Doc = json.loads(doc)
    return loaded


def _op(op: str) -> ChangeOp:
    if op == "insert":
        return "insert"
    if op == "delete":
        return "delete"
    return "update"
