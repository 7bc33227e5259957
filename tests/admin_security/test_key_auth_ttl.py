"""key-auth credential ``ttl``: an expired key is refused like an unknown one without a
recompile, and the store purge deletes expired credentials (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
import os
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from meshgate.controlplane.admin_api.ttl_purge import purge_expired_credentials
from meshgate.resources.kong_credentials_ttl import (
    credential_expiry,
    expired_ids,
    is_expired,
    remaining_ttl,
)
from meshgate.store import open_store
from testkit import EchoUpstreams, Gateway, free_port

PG_DSN_ENV = "MESHGATE_TEST_PG_DSN"


def admin(gw: Gateway, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """``(status, JSON body)`` of an Admin API call."""
    req = urllib.request.Request(
        f"http://127.0.0.1:{gw.admin_port}{path}",
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def test_expiry_helpers_follow_kong() -> None:
    doc = {"id": "a", "created_at": 1000, "ttl": 60}
    assert credential_expiry(doc) == 1060.0
    assert not is_expired(doc, 1059.9)
    assert is_expired(doc, 1060.0)
    assert remaining_ttl(doc, 1000.5) == 59
    assert remaining_ttl(doc, 5000) == 0
    for never in ({"created_at": 1}, {"created_at": 1, "ttl": 0}, {"created_at": 1, "ttl": None}):
        assert credential_expiry(never) is None
        assert remaining_ttl(never, 10**12) is None
    docs = [doc, {"id": "b", "created_at": 1000}, {"id": "c", "created_at": 1050, "ttl": 5}]
    assert expired_ids(docs, 1059) == ["c"]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.services)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ttl.db'}"
        return
    dsn = os.environ.get(PG_DSN_ENV)
    if not dsn:
        pytest.skip(f"{PG_DSN_ENV} is not set")
    schema = f"mg_ttl_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{dsn}{'&' if '?' in dsn else '?'}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def test_purge_deletes_only_expired_credentials(store_url: str) -> None:
    now = 1_000_000.0

    async def scenario() -> None:
        store = await open_store(store_url)
        try:
            consumer = {"id": str(uuid.uuid4()), "username": "ann", "created_at": 1}
            await store.insert("consumers", consumer, unique_keys=[])
            creds = {
                "expired": {"ttl": 10, "created_at": now - 60},
                "fresh": {"ttl": 3600, "created_at": now - 60},
                "forever": {"created_at": now - 10**6},
                "just-expired": {"ttl": 60, "created_at": now - 60},
            }
            ids = {}
            for key, fields in creds.items():
                doc = {"id": str(uuid.uuid4()), "key": key, "consumer": {"id": consumer["id"]}}
                await store.insert("keyauth_credentials", {**doc, **fields}, unique_keys=[])
                ids[key] = doc["id"]
            before = await store.revision()
            deleted = await purge_expired_credentials(store, now=lambda: now)
            assert sorted(deleted) == sorted([ids["expired"], ids["just-expired"]])
            assert await store.revision() == before + 1  # one write for the whole purge
            assert await purge_expired_credentials(store, now=lambda: now) == []
            assert await store.revision() == before + 1  # nothing left: no write at all
            left = [d["key"] for d in (await store.list("keyauth_credentials")).data]
            assert sorted(left) == ["forever", "fresh"]
        finally:
            await store.close()

    asyncio.run(scenario())


def test_an_expired_key_is_refused_without_a_recompile(
    tmp_path: Path, echo_upstreams: EchoUpstreams
) -> None:
    gw = Gateway(None, free_port(), "--store", f"sqlite:///{tmp_path}/m.db")
    try:
        url = f"http://127.0.0.1:{echo_upstreams.ports[0]}"
        assert admin(gw, "POST", "/services", {"name": "s", "url": url})[0] == 201
        assert admin(gw, "POST", "/services/s/routes", {"name": "r", "paths": ["/t"]})[0] == 201
        assert admin(gw, "POST", "/routes/r/plugins", {"name": "key-auth"})[0] == 201
        assert admin(gw, "POST", "/consumers", {"username": "ann"})[0] == 201
        status, long_lived = admin(gw, "POST", "/consumers/ann/key-auth", {"key": "k-long"})
        assert status == 201
        # created_at has whole-second precision: a 3 s ttl leaves at least 2 s of validity
        status, short = admin(gw, "POST", "/consumers/ann/key-auth", {"key": "k-3s", "ttl": 3})
        assert status == 201, short
        assert gw.echo("/t", {"apikey": "k-3s"})["headers"]["x-consumer-username"] == "ann"
        applied_before = gw.log().count("applied snapshot")

        assert short["ttl"] in (2, 3)  # Kong shows the whole seconds left
        deadline = short["created_at"] + 3 + 5
        while gw.request("GET", "/t", {"apikey": "k-3s"})[0] == 200:
            assert time.time() < deadline, "the key never expired"
            time.sleep(0.1)
        assert time.time() >= short["created_at"] + 3  # not refused early
        status, headers, body = gw.request("GET", "/t", {"apikey": "k-3s"})
        assert status == 401
        assert b"Unauthorized" in body  # the unknown-key answer
        assert headers["www-authenticate"] == "Key"
        assert gw.echo("/t", {"apikey": "k-long"})["headers"]["x-consumer-username"] == "ann"
        # the proxy refused it on its own: no new snapshot, the row is still stored
        assert gw.log().count("applied snapshot") == applied_before
        # as in Kong, the Admin API no longer shows it although the purge has not run yet
        assert admin(gw, "GET", f"/key-auths/{short['id']}")[0] == 404
        assert long_lived["ttl"] is None
    finally:
        gw.stop()
