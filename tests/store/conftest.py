"""Store test fixtures: a fresh database per test, for SQLite (a temp file) and PostgreSQL.

PostgreSQL tests need ``MESHGATE_TEST_PG_DSN`` (``eval "$(bash scripts/services/env.sh)"``);
each test gets its own schema, selected through the URL's ``options=-csearch_path=...``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

PG_DSN_ENV = "MESHGATE_TEST_PG_DSN"


def _pg_url_with_schema(dsn: str, schema: str) -> str:
    separator = "&" if "?" in dsn else "?"
    return f"{dsn}{separator}options=-csearch_path%3D{schema}"


def pg_dsn() -> str:
    dsn = os.environ.get(PG_DSN_ENV)
    if not dsn:
        pytest.skip(f'{PG_DSN_ENV} is not set; start it: eval "$(bash scripts/services/env.sh)"')
    return dsn


@contextmanager
def fresh_pg_schema(dsn: str) -> Iterator[str]:
    """A new empty schema for one test, dropped afterwards; yields a store URL using it."""
    schema = f"mg_store_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield _pg_url_with_schema(dsn, schema)
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


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
