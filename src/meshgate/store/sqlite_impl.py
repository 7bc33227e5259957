"""The SQLite store (the embedded default): stdlib ``sqlite3`` in WAL mode.

The statements of one store instance run one at a time, under an asyncio lock that a
transaction holds from ``BEGIN IMMEDIATE`` to ``COMMIT``.  What may wait or take long (``BEGIN
IMMEDIATE`` waits for other processes' writers; commits, dumps, bulk writes, pages) runs on the
store's own worker thread; one-row reads and one-row writes inside a transaction run on the
event loop's thread, since they take microseconds and a thread hop on a busy node takes
milliseconds. Several store
instances (or processes) may open the same file: SQLite serializes their writers, and each
instance notices the others' commits by polling the revision row every ``POLL_INTERVAL``
seconds once something subscribes. ``:memory:`` databases are private to one instance.
"""

from __future__ import annotations

import asyncio
import builtins
import functools
import logging
import sqlite3
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Literal, ParamSpec, TypeVar

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
from meshgate.store.sqlite_ops import SqliteOps, WriteMode, connect

T = TypeVar("T")
P = ParamSpec("P")
POLL_INTERVAL = 0.15
"""Seconds between revision polls that find other processes' commits (subscribers only)."""

_log = logging.getLogger("meshgate.store.sqlite")


class SqliteStore:
    """``Store`` on a SQLite file (or ``:memory:``)."""

    dialect: Literal["sqlite", "postgres"] = "sqlite"

    def __init__(self, path: str) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="meshgate-sqlite")
        self._ops: SqliteOps | None = None
        self._lock = OwnedLock()
        self._feed = RevisionFeed("sqlite-store", self.revision, self._watch)

    @classmethod
    async def open(cls, path: str) -> SqliteStore:
        store = cls(path)
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        store._ops = SqliteOps(await store._call(connect, path))
        return store

    async def _call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    @property
    def ops(self) -> SqliteOps:
        if self._ops is None:
            raise RuntimeError("store is closed")
        return self._ops

    async def _read(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        async with self._lock:
            return await self._call(fn, *args, **kwargs)

    async def _read_inline(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """A point read, on the calling thread: tens of microseconds (a WAL reader never
        waits for a writer), where a hop to the store's thread would wait for the GIL and
        then for the event loop — milliseconds each on a node busy with traffic."""
        async with self._lock:
            return fn(*args, **kwargs)

    async def _atomic(self, work: Callable[[ChangeLog], T]) -> T:
        async with self._lock:
            result, revision = await self._call(self.ops.atomic, work)
        if revision is not None:
            self._feed.publish(revision)
        return result

    # -- reads -------------------------------------------------------------------------------

    async def get(self, entity_type: str, entity_id: str) -> Doc | None:
        return await self._read_inline(self.ops.get, entity_type, entity_id)

    async def get_by_key(self, entity_type: str, key_name: str, value: str) -> Doc | None:
        return await self._read_inline(self.ops.get_by_key, entity_type, key_name, value)

    async def revision(self) -> int:
        return await self._read_inline(self.ops.revision)

    async def changes_since(self, revision: int) -> builtins.list[Change]:
        return await self._read_inline(self.ops.changes_since, revision)

    async def dump_all(self) -> Dump:
        return await self._read(self.ops.dump_all)

    # -- writes ------------------------------------------------------------------------------

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        async with self._lock:
            await self._call(self.ops.begin)
            tx = SqliteTransaction(self)
            try:
                yield tx
            except BaseException:
                await self._call(self.ops.rollback)
                raise
            finally:
                tx.open = False
            revision = await self._call(self.ops.commit, tx.changes)
        if revision is not None:
            self._feed.publish(revision)

    async def insert(self, entity_type: str, doc: Doc, *, unique_keys: UniqueKeys) -> Doc:
        entity = prepare(entity_type, doc, unique_keys)
        return await self._atomic(functools.partial(self.ops.write, entity, "insert"))

    async def upsert(
        self, entity_type: str, entity_id: str, doc: Doc, *, unique_keys: UniqueKeys
    ) -> Doc:
        entity = prepare(entity_type, doc, unique_keys, entity_id)
        return await self._atomic(functools.partial(self.ops.write, entity, "upsert"))

    async def update(
        self, entity_type: str, entity_id: str, doc: Doc, *, unique_keys: UniqueKeys
    ) -> Doc:
        entity = prepare(entity_type, doc, unique_keys, entity_id)
        return await self._atomic(functools.partial(self.ops.write, entity, "update"))

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
        work = functools.partial(self.ops.delete_many, entity_type, id_list, conditions)
        return await self._atomic(work)

    async def replace_all(self, entities: Iterable[EntityWrite]) -> int:
        wanted = builtins.list(entities)
        async with self._lock:
            revision = await self._call(self.ops.replace_all, wanted)
        self._feed.publish(revision)
        return revision

    # -- feed, migrations, lifecycle ---------------------------------------------------------

    def subscribe(self) -> AsyncGenerator[int, None]:
        return self._feed.subscribe()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(POLL_INTERVAL)
            try:
                self._feed.publish(await self.revision())
            except sqlite3.Error as exc:
                _log.warning("polling the store revision failed: %s", exc)
            except RuntimeError:  # store closed under us
                return

    async def applied_migrations(self) -> builtins.list[AppliedMigration]:
        return await self._read(self.ops.applied_migrations)

    async def apply_migration(self, version: int, name: str, statements: Sequence[str]) -> bool:
        return await self._read(self.ops.apply_migration, version, name, statements)

    async def close(self) -> None:
        await self._feed.close()
        if self._ops is not None:
            async with self._lock:
                await self._call(self._ops.conn.close)
            self._ops = None
        self._executor.shutdown(wait=False)

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
        return await self._read(self.ops.list_page, query)


class SqliteTransaction:
    """The ``Transaction`` handed out by ``SqliteStore.transaction()``."""

    def __init__(self, store: SqliteStore) -> None:
        self._store = store
        self.changes = ChangeLog()
        self.open = True

    async def _run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        if not self.open:
            raise RuntimeError("transaction already finished")
        return await self._store._call(fn, *args, **kwargs)

    def _inline(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """One-row work inside the open transaction (which holds SQLite's write lock, so
        nothing waits): on the calling thread, see ``SqliteStore._read_inline``."""
        if not self.open:
            raise RuntimeError("transaction already finished")
        return fn(*args, **kwargs)

    async def get(self, entity_type: str, entity_id: str) -> Doc | None:
        return self._inline(self._store.ops.get, entity_type, entity_id)

    async def get_by_key(self, entity_type: str, key_name: str, value: str) -> Doc | None:
        return self._inline(self._store.ops.get_by_key, entity_type, key_name, value)

    async def _write(
        self, entity_type: str, doc: Doc, keys: UniqueKeys, entity_id: str | None, mode: WriteMode
    ) -> Doc:
        entity = prepare(entity_type, doc, keys, entity_id)
        return self._inline(self._store.ops.write, entity, mode, self.changes)

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
        ops = self._store.ops
        return await self._run(ops.delete_many, entity_type, id_list, conditions, self.changes)

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
        return await self._run(self._store.ops.list_page, query)
