"""``meshgate migrations status|up`` on SQLite and on the real PostgreSQL (one schema per test)."""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from meshgate.cli.main import app
from meshgate.cli.migrations_cmd import EXIT_PENDING
from meshgate.store.migrations import MIGRATIONS

PG_DSN_ENV = "MESHGATE_TEST_PG_DSN"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.services)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    dsn = os.environ.get(PG_DSN_ENV)
    if not dsn:
        pytest.skip(f'{PG_DSN_ENV} is not set (eval "$(bash scripts/services/env.sh)")')
    schema = f"mg_migcli_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{dsn}{'&' if '?' in dsn else '?'}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def migrations(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["migrations", *args])
    return result.exit_code, result.stdout, result.stderr


def test_status_of_a_fresh_store_lists_pending_and_exits_3(store_url: str) -> None:
    code, out, err = migrations("status", "--store", store_url)
    assert code == EXIT_PENDING == 3, (out, err)
    assert "pending" in out
    assert "applied" not in out.replace("applied at", "")
    assert MIGRATIONS[0].name.split(":")[0] in out
    assert "pending migration" in err
    # status did not migrate: asking again gives the same answer
    assert migrations("status", "--store", store_url)[0] == EXIT_PENDING


def test_up_applies_then_status_is_clean_and_up_is_idempotent(store_url: str) -> None:
    code, out, err = migrations("up", "--store", store_url)
    assert code == 0, (out, err)
    assert f"applied {len(MIGRATIONS)} migration(s)" in err
    code, out, err = migrations("status", "--store", store_url)
    assert code == 0, (out, err)
    assert "pending" not in out
    assert out.count("applied") >= len(MIGRATIONS)
    assert "up to date" in err
    code, out, err = migrations("up", "--store", store_url)
    assert code == 0
    assert "nothing to apply" in err


def test_a_migration_from_a_newer_meshgate_is_listed_as_applied(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'newer.db'}"
    assert migrations("up", "--store", url)[0] == 0
    with sqlite3.connect(tmp_path / "newer.db") as conn:
        conn.execute("INSERT INTO schema_migrations VALUES (999, 'from the future', 1.0)")
    code, out, _ = migrations("status", "--store", url)
    assert code == 0
    assert "999" in out
    assert "from the future" in out


def test_an_unusable_store_exits_1_with_the_reason(tmp_path: Path) -> None:
    code, _, err = migrations("status", "--store", "mysql://nope")
    assert code == 1
    assert "cannot open store" in err
    assert "unsupported store URL" in err
    code, _, err = migrations(
        "up", "--store", "postgresql://user:hunter2@127.0.0.1:1/none?connect_timeout=2"
    )
    assert code == 1
    assert "cannot open store" in err
    assert "hunter2" not in err  # the password is not echoed


def test_run_no_migrate_refuses_a_store_with_pending_migrations(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'unmigrated.db'}"
    result = CliRunner().invoke(
        app, ["run", "--store", url, "--no-migrate", "--admin-listen", "off"]
    )
    assert result.exit_code == EXIT_PENDING, result.output
    assert "pending migration(s) and --no-migrate" in result.stderr
    # nothing was applied behind the user's back
    assert migrations("status", "--store", url)[0] == EXIT_PENDING
