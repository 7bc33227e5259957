"""Migrations (idempotent, concurrent starters), store URLs and change-log pruning."""

from __future__ import annotations

import asyncio

import pytest

from meshgate.store import (
    RevisionGone,
    Store,
    UniqueViolation,
    migrate_up,
    migration_status,
    open_store,
    postgres_ops,
    sqlite_ops,
    sqlite_path,
)
from meshgate.store.migrations import MIGRATIONS, pending


def test_migrations_are_idempotent(store_url: str) -> None:
    async def main() -> None:
        fresh = await open_store(store_url, migrate=False)
        try:
            status = await migration_status(fresh)
            assert [s.version for s in pending(status)] == [m.version for m in MIGRATIONS]
            applied = await migrate_up(fresh)
            assert [s.version for s in applied] == [m.version for m in MIGRATIONS]
            assert all(s.applied_at for s in applied)
            assert await migrate_up(fresh) == []
            assert pending(await migration_status(fresh)) == []
            await fresh.insert("services", {"name": "kept"}, unique_keys=[])
        finally:
            await fresh.close()
        again = await open_store(store_url)  # migrates on start: nothing left to do, data kept
        try:
            assert await migrate_up(again) == []
            assert len((await again.list("services")).data) == 1
        finally:
            await again.close()

    asyncio.run(main())


def test_concurrent_starters_migrate_once(store_url: str) -> None:
    async def main() -> None:
        stores = await asyncio.gather(*(open_store(store_url, migrate=False) for _ in range(3)))
        try:
            results = await asyncio.gather(*(migrate_up(store) for store in stores))
            assert sorted(len(r) for r in results) == [0, 0, len(MIGRATIONS)]
            assert await stores[0].revision() == 0
        finally:
            for store in stores:
                await store.close()

    asyncio.run(main())


def test_concurrent_writers_clash_on_unique_keys(store_url: str) -> None:
    async def main() -> None:
        first, second = await open_store(store_url), await open_store(store_url)
        try:
            outcomes = await asyncio.gather(
                *(
                    store.insert(
                        "consumers", {"username": "bob"}, unique_keys=[("username", "bob")]
                    )
                    for store in (first, second, first, second)
                ),
                return_exceptions=True,
            )
            winners = [o for o in outcomes if isinstance(o, dict)]
            losers = [o for o in outcomes if isinstance(o, UniqueViolation)]
            assert len(winners) == 1, outcomes
            assert len(losers) == 3
            assert {loser.existing_id for loser in losers} == {winners[0]["id"]}
        finally:
            await first.close()
            await second.close()

    asyncio.run(main())


def test_old_changes_are_pruned(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_ops, "CHANGE_RETENTION_REVISIONS", 3)
    monkeypatch.setattr(postgres_ops, "CHANGE_RETENTION_REVISIONS", 3)

    async def body(store: Store) -> None:
        for i in range(6):
            await store.insert("services", {"name": f"s{i}"}, unique_keys=[])
        assert await store.revision() == 6
        with pytest.raises(RevisionGone) as gone:
            await store.changes_since(1)
        assert gone.value.oldest_available == 3
        assert [c.revision for c in await store.changes_since(3)] == [4, 5, 6]

    async def main() -> None:
        store = await open_store(store_url)
        try:
            await body(store)
        finally:
            await store.close()

    asyncio.run(main())


def test_memory_store_and_urls() -> None:
    assert sqlite_path("sqlite://:memory:") == ":memory:"
    assert sqlite_path("sqlite:///:memory:") == ":memory:"
    assert sqlite_path("sqlite:///var/lib/mg.db") == "/var/lib/mg.db"
    assert sqlite_path("sqlite://mg.db") == "mg.db"

    async def main() -> None:
        with pytest.raises(ValueError, match="unsupported store URL"):
            await open_store("mysql://x")
        one, two = await open_store("sqlite://:memory:"), await open_store("sqlite://:memory:")
        try:
            await one.insert("services", {"name": "a"}, unique_keys=[])
            assert len((await one.list("services")).data) == 1
            assert (await two.list("services")).data == []  # each :memory: store is private
        finally:
            await one.close()
            await two.close()

    asyncio.run(main())
