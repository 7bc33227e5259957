"""Live-apply fixtures: a store URL for SQLite and (with ``services``) PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit import fresh_pg_schema, pg_dsn


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.services)])
def live_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty store database (PostgreSQL: a fresh schema, dropped afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'node.db'}"
        return
    with fresh_pg_schema(pg_dsn(), "mg_live_test") as url:
        yield url
