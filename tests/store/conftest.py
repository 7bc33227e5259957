"""Store test fixtures: a fresh database per test, for SQLite (a temp file) and PostgreSQL.

PostgreSQL tests need ``MESHGATE_TEST_PG_DSN`` (``eval "$(bash scripts/services/env.sh)"``);
each test gets its own schema, selected through the URL's ``options=-csearch_path=...``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

import testkit

PG_DSN_ENV = "MESHGATE_TEST_PG_DSN"


pg_dsn = testkit.pg_dsn


def fresh_pg_schema(dsn: str) -> AbstractContextManager[str]:
    """A new empty schema for one test, dropped afterwards; yields a store URL using it."""
    return testkit.fresh_pg_schema(dsn, "mg_store_test")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.services)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty store database; two ``open_store`` on it share the data."""
    if request.param == "sqlite":
        yield f"sqlite://{tmp_path / 'store.db'}"
        return
    with fresh_pg_schema(pg_dsn()) as url:
        yield url


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A store URL on a fresh PostgreSQL schema (tests using it need ``services``)."""
    with fresh_pg_schema(pg_dsn()) as url:
        yield url
