"""The PostgreSQL store (clusters): psycopg 3 async, JSONB docs, LISTEN/NOTIFY change feed.

Each store instance holds three connections: one for reads (autocommit, serialized by a lock),
one for write transactions (serialized by an owner-aware lock) and, once something subscribes,
one that LISTENs. Every committing transaction NOTIFYs ``"<schema> <revision>"``, so all nodes on
the database see each other's revisions at once. The listener also re-reads the revision every
``RECHECK_INTERVAL`` seconds, and right after (re)connecting, so a lost connection or a
notification sent while it was down never hides a change for long.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Literal, TypeVar

import psycopg

from meshgate.store.api import (
    DEFAULT_PAGE_SIZE,
    AppliedMigration,
    Change,
    Doc,
    Dump,
    EntityWrite,
    Filter,
    Page,
    TagsMode,
    Transaction,
    UniqueKeys,
)
from meshgate.store.common import ChangeLog, OwnedLock, filter_path, list_query, prepare
from meshgate.store.feed import RevisionFeed
from meshgate.store.postgres_ops import CHANNEL, Conn, PostgresOps, WriteMode

T = TypeVar("T")
RECHECK_INTERVAL = 1.0
"""Seconds between revision re-reads on the listening connection (a safety net for NOTIFY)."""
RECONNECT_DELAY_MAX = 2.0

_log = logging.getLogger("meshgate.store.postgres")


class PostgresStore:
    """``Store`` on a PostgreSQL database (the schema is the first one on the search path)."""

    dialect: Literal["sqlite", "postgres"] = "postgres"

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        # Connections are named "<application_name or meshgate-store>-<read|write|listen>".
        name = psycopg.conninfo.conninfo_to_dict(dsn).get("application_name")
        self._app_name = str(name) if name else "meshgate-store"
        self._reader: Conn | None = None
        self._writer: Conn | None = None
        self._read_lock = asyncio.Lock()
        self._write_lock = OwnedLock()
        self._feed = RevisionFeed("postgres-store", self.revision, self._watch)

    @classmethod
    async def open(cls, dsn: str) -> PostgresStore:
        store = cls(dsn)
        await store._reading()
        return store

    async def _connect(self, role: str) -> Conn:
        return await psycopg.AsyncConnection.connect(
            self._dsn, autocommit=True, application_name=f"{self._app_name}-{role}"
        )

    async def _reading(self) -> PostgresOps:
        # Same rule as SQLite, where it would deadlock: no store reads inside a transaction.
        self._write_lock.check_not_held()
        if self._reader is None or self._reader.closed or self._reader.broken:
            self._reader = await self._connect("read")
        return PostgresOps(self._reader)

    async def _writing(self) -> PostgresOps:
        if self._writer is None or self._writer.closed or self._writer.broken:
            self._writer = await self._connect("write")
        return PostgresOps(self._writer)

    # -- reads -------------------------------------------------------------------------------

    async def _read(self, call: Callable[[PostgresOps], Awaitable[T]]) -> T:
        """Run ``call`` on the read connection; once more on a fresh one if that one died."""
        async with self._read_lock:
            ops = await self._reading()
            try:
                return await call(ops)
            except psycopg.OperationalError:
                if not ops.conn.broken:
                    raise
                _log.warning("store read connection lost; reconnecting")
                return await call(await self._reading())

    async def get(self, entity_type: str, entity_id: str) -> Doc | None:
        return await self._read(lambda ops: ops.get(entity_type, entity_id))

    async def get_by_key(self, entity_type: str, key_name: str, value: str) -> Doc | None:
        return await self._read(lambda ops: ops.get_by_key(entity_type, key_name, value))

    async def revision(self) -> int:
        return await self._read(lambda ops: ops.revision())

    async def changes_since(self, revision: int) -> builtins.list[Change]:
        return await self._read(lambda ops: ops.changes_since(revision))

    async def dump_all(self) -> Dump:
        async def consistent(ops: PostgresOps) -> Dump:
            async with ops.conn.transaction():
                await ops.conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                return await ops.dump_all()

        return await self._read(consistent)

    # -- writes ------------------------------------------------------------------------------

    async def _begin(self, stack: AsyncExitStack) -> PostgresOps:
        """BEGIN on the write connection (hold the write lock); on a connection found dead,
        reconnect once: nothing ran yet, so retrying is safe."""
        for attempt in range(2):
            ops = await self._writing()
            try:
                await stack.enter_async_context(ops.conn.transaction())
                return ops
            except psycopg.OperationalError:
                if attempt or not ops.conn.broken:
                    raise
                _log.warning("store write connection lost; reconnecting")
        raise AssertionError("unreachable")

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        async with self._write_lock, AsyncExitStack() as stack:
            ops = await self._begin(stack)
            tx = PostgresTransaction(ops)
            try:
                yield tx
                revision = await ops.finish(tx.changes)
            finally:
                tx.open = False
        if revision is not None:
            self._feed.publish(revision)

    async def insert(self, entity_type: str, doc: Doc, *, unique_keys: UniqueKeys) -> Doc:
        async with self.transaction() as tx:
            return await tx.insert(entity_type, doc, unique_keys=unique_keys)

    async def upsert(
        self, entity_type: str, entity_id: str, doc: Doc, *, unique_keys: UniqueKeys
    ) -> Doc:
        async with self.transaction() as tx:
            return await tx.upsert(entity_type, entity_id, doc, unique_keys=unique_keys)

    async def update(
        self, entity_type: str, entity_id: str, doc: Doc, *, unique_keys: UniqueKeys
    ) -> Doc:
        async with self.transaction() as tx:
            return await tx.update(entity_type, entity_id, doc, unique_keys=unique_keys)

    async def delete(self, entity_type: str, entity_id: str) -> bool:
        return bool(await self.delete_many(entity_type, ids=[entity_id]))

    async def delete_many(
        self,
        entity_type: str,
        *,
        ids: Iterable[str] | None = None,
        filter: Filter | None = None,
    ) -> builtins.list[str]:
        async with self.transaction() as tx:
            return await tx.delete_many(entity_type, ids=ids, filter=filter)

    async def replace_all(self, entities: Iterable[EntityWrite]) -> int:
        wanted = builtins.list(entities)
        async with self._write_lock, AsyncExitStack() as stack:
            ops = await self._begin(stack)
            changes = ChangeLog()
            await ops.replace_all(wanted, changes)
            revision = await ops.finish(changes)
            if revision is None:
                revision = await ops.revision()
        self._feed.publish(revision)
        return revision

    # -- feed, migrations, lifecycle ---------------------------------------------------------

    def subscribe(self) -> AsyncGenerator[int, None]:
        return self._feed.subscribe()

    async def _watch(self) -> None:
        delay = 0.05
        while True:
            try:
                async with await self._connect("listen") as conn:
                    await self._listen(conn)
            except Exception as exc:  # keep listening whatever broke; it is logged
                _log.warning("store listener failed (%s); reconnecting", exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_DELAY_MAX)

    async def _listen(self, conn: Conn) -> None:
        await conn.execute(f"LISTEN {CHANNEL}")
        cursor = await conn.execute("SELECT current_schema()")
        schema_row = await cursor.fetchone()
        schema = "" if schema_row is None else str(schema_row[0])
        ops = PostgresOps(conn)
        while True:
            # Re-read after (re)connecting and on every quiet interval: nothing stays missed.
            self._feed.publish(await ops.revision())
            async for note in conn.notifies(timeout=RECHECK_INTERVAL):
                note_schema, _, revision = note.payload.rpartition(" ")
                if note_schema == schema and revision.isdigit():
                    self._feed.publish(int(revision))

    async def applied_migrations(self) -> builtins.list[AppliedMigration]:
        return await self._read(lambda ops: ops.applied_migrations())

    async def apply_migration(self, version: int, name: str, statements: Sequence[str]) -> bool:
        async with self._write_lock, AsyncExitStack() as stack:
            conn = (await self._begin(stack)).conn
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext('meshgate-migrations:' || current_schema()))"
            )
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version int PRIMARY KEY,"
                " name text NOT NULL, applied_at double precision NOT NULL)"
            )
            cursor = await conn.execute(
                "SELECT 1 FROM schema_migrations WHERE version = %s", (version,)
            )
            if await cursor.fetchone() is not None:
                return False
            for statement in statements:
                await conn.execute(statement)
            await conn.execute(
                "INSERT INTO schema_migrations VALUES (%s, %s, extract(epoch FROM now()))",
                (version, name),
            )
            return True

    async def close(self) -> None:
        await self._feed.close()
        for conn in (self._reader, self._writer):
            if conn is not None:
                await conn.close()
        self._reader = self._writer = None

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
        query = list_query(entity_type, size, offset, tags, tags_mode, filter)
        return await self._read(lambda ops: ops.list_page(query))


class PostgresTransaction:
    """The ``Transaction`` handed out by ``PostgresStore.transaction()``."""

    def __init__(self, ops: PostgresOps) -> None:
        self._ops = ops
        self.changes = ChangeLog()
        self.open = True

    def _live(self) -> PostgresOps:
        if not self.open:
            raise RuntimeError("transaction already finished")
        return self._ops

    async def get(self, entity_type: str, entity_id: str) -> Doc | None:
        return await self._live().get(entity_type, entity_id)

    async def get_by_key(self, entity_type: str, key_name: str, value: str) -> Doc | None:
        return await self._live().get_by_key(entity_type, key_name, value)

    async def _write(
        self, entity_type: str, doc: Doc, keys: UniqueKeys, entity_id: str | None, mode: WriteMode
    ) -> Doc:
        entity = prepare(entity_type, doc, keys, entity_id)
        return await self._live().write(entity, mode, self.changes)

    async def insert(self, entity_type: str, doc: Doc, *, unique_keys: UniqueKeys) -> Doc:
        return await self._write(entity_type, doc, unique_keys, None, "insert")

    async def upsert(
        self, entity_type: str, entity_id: str, doc: Doc, *, unique_keys: UniqueKeys
    ) -> Doc:
        return await self._write(entity_type, doc, unique_keys, entity_id, "upsert")

    async def update(
        self, entity_type: str, entity_id: str, doc: Doc, *, unique_keys: UniqueKeys
    ) -> Doc:
        return await self._write(entity_type, doc, unique_keys, entity_id, "update")

    async def delete(self, entity_type: str, entity_id: str) -> bool:
        return bool(await self.delete_many(entity_type, ids=[entity_id]))

    async def delete_many(
        self,
        entity_type: str,
        *,
        ids: Iterable[str] | None = None,
        filter: Filter | None = None,
    ) -> builtins.list[str]:
        id_list = None if ids is None else builtins.list(ids)
        conditions = [(filter_path(path), value) for path, value in (filter or {}).items()]
        return await self._live().delete_many(entity_type, id_list, conditions, self.changes)

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
        query = list_query(entity_type, size, offset, tags, tags_mode, filter)
        return await self._live().list_page(query)
