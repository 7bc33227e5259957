"""Admin API fixtures: the app over a fresh store (SQLite always; PostgreSQL with
``MESHGATE_TEST_PG_DSN``, one schema per test), driven through httpx's ASGI transport from
a background event loop so tests stay plain synchronous functions."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest
from admin_kit import AdminClient, MakeAdmin

import testkit
from meshgate.controlplane.admin_api import NodeInfo, create_admin_app
from meshgate.store import open_store
from testkit import BackgroundLoop

PG_DSN_ENV = "MESHGATE_TEST_PG_DSN"


def fresh_pg_schema(dsn: str) -> AbstractContextManager[str]:
    """A new empty schema for one test, dropped afterwards; yields a store URL using it."""
    return testkit.fresh_pg_schema(dsn, "mg_admin_test")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.services)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite://{tmp_path / 'admin.db'}"
        return
    dsn = os.environ.get(PG_DSN_ENV)
    if not dsn:
        pytest.skip(f'{PG_DSN_ENV} is not set; start it: eval "$(bash scripts/services/env.sh)"')
    with fresh_pg_schema(dsn) as url:
        yield url


@pytest.fixture
def make_admin(store_url: str, background_loop: BackgroundLoop) -> Iterator[MakeAdmin]:
    """``make_admin(**create_admin_app kwargs)``: a client on the one store of this test."""
    store = background_loop.run(open_store(store_url))
    clients: list[AdminClient] = []

    def make(**options: Any) -> AdminClient:
        changes: list[int] = []
        node = NodeInfo(node_id="9d1f4b6e-0000-4000-8000-000000000001", hostname="test-node")
        options.setdefault("on_change", changes.append)
        app = create_admin_app(store, node_info=node, **options)
        client = AdminClient(background_loop, app, store, changes)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
    background_loop.run(store.close())


@pytest.fixture
def admin(make_admin: MakeAdmin) -> AdminClient:
    return make_admin()
