"""PostgreSQL only: the change feed, reads and writes survive lost connections."""

from __future__ import annotations

import asyncio
import uuid

import psycopg
import pytest

from meshgate.store import open_store

pytestmark = pytest.mark.services


@pytest.fixture
def named_pg_url(pg_url: str) -> tuple[str, str]:
    """``pg_url`` with a unique application_name, so a test kills only its own connections."""
    name = f"mgtest-{uuid.uuid4().hex[:10]}"
    return f"{pg_url}&application_name={name}", name


async def _terminate(url: str, application_name: str) -> int:
    """Kill this database's backends with ``application_name`` (as a failover would)."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as admin:
        cursor = await admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = %s AND datname = current_database()",
            (application_name,),
        )
        row = await cursor.fetchone()
        return 0 if row is None else int(row[0])


def test_feed_recovers_changes_made_while_the_listener_was_down(
    named_pg_url: tuple[str, str],
) -> None:
    pg_url, name = named_pg_url

    async def main() -> None:
        writer, watcher = await open_store(pg_url), await open_store(pg_url)
        try:
            feed = watcher.subscribe()
            start = await asyncio.wait_for(anext(feed), 5)
            await writer.insert("services", {"name": "a"}, unique_keys=[])
            assert await asyncio.wait_for(anext(feed), 1.0) == start + 1
            assert await _terminate(pg_url, f"{name}-listen") >= 1
            # This NOTIFY goes nowhere: the listener is down. The re-read after reconnecting
            # must still deliver the revision.
            await writer.insert("services", {"name": "b"}, unique_keys=[])
            assert await asyncio.wait_for(anext(feed), 3.0) == start + 2
            await writer.insert("services", {"name": "c"}, unique_keys=[])
            assert await asyncio.wait_for(anext(feed), 1.0) == start + 3
        finally:
            await writer.close()
            await watcher.close()

    asyncio.run(main())


def test_reads_and_writes_reconnect_after_the_connection_dies(
    named_pg_url: tuple[str, str],
) -> None:
    pg_url, name = named_pg_url

    async def main() -> None:
        store = await open_store(pg_url)
        try:
            await store.insert("services", {"name": "a"}, unique_keys=[("name", "a")])
            assert await _terminate(pg_url, f"{name}-read") >= 1
            assert (await store.get_by_key("services", "name", "a")) is not None
            assert await _terminate(pg_url, f"{name}-write") >= 1
            await store.insert("services", {"name": "b"}, unique_keys=[("name", "b")])
            assert await store.revision() == 2
        finally:
            await store.close()

    asyncio.run(main())


def test_postgres_scheme_alias(pg_url: str) -> None:
    async def main() -> None:
        store = await open_store("postgres://" + pg_url.removeprefix("postgresql://"))
        try:
            assert store.dialect == "postgres"
            assert await store.revision() == 0
        finally:
            await store.close()

    asyncio.run(main())
