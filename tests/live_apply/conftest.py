"""Live-apply fixtures: a store URL for SQLite and (with ``services``) PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.services)])
def live_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty store database (PostgreSQL: a fresh schema, dropped afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'node.db'}"
        return
    dsn = os.environ.get("MESHGATE_TEST_PG_DSN")
    if not dsn:
        pytest.skip('MESHGATE_TEST_PG_DSN is not set: eval "$(bash scripts/services/env.sh)"')
    schema = f"mg_live_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in dsn else "?"
    try:
        yield f"{dsn}{separator}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
