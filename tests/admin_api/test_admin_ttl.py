"""key-auth ``ttl`` as Kong's Admin API shows it: the seconds left (null without one), an
expired credential gone from GET and lists before any purge, ``ttl`` an option (code 11 when
invalid or on an entity without ttl), ``now + ttl`` on update."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from admin_kit import AdminClient


def _consumer(admin: AdminClient) -> dict[str, Any]:
    result: dict[str, Any] = admin.ok("POST", "/consumers", 201, json={"username": "ann"})
    return result


def _stored_key(admin: AdminClient, consumer_id: str, key: str, age: int, ttl: int | None) -> str:
    """A credential written straight to the store, created ``age`` seconds ago."""
    doc = {
        "id": str(uuid.uuid4()),
        "key": key,
        "consumer": {"id": consumer_id},
        "created_at": int(time.time()) - age,
        "ttl": ttl,
        "tags": [],
    }
    admin.loop.run(admin.store.insert("keyauth_credentials", doc, unique_keys=[("key", key)]))
    return doc["id"]


def _left(value: Any, asked: int) -> bool:
    """``value`` is the seconds left of a ttl of ``asked`` set moments ago (Kong floors them;
    the slack absorbs a slow test machine)."""
    return isinstance(value, int) and asked - 10 <= value <= asked


def test_ttl_shows_the_seconds_left_and_null_without_one(admin: AdminClient) -> None:
    _consumer(admin)
    created = admin.ok("POST", "/consumers/ann/key-auth", 201, json={"key": "k1", "ttl": 100})
    assert _left(created["ttl"], 100)  # Kong: FLOOR(expiry - now)
    plain = admin.ok("POST", "/consumers/ann/key-auth", 201, json={"key": "k2"})
    assert "ttl" in plain
    assert plain["ttl"] is None
    assert _left(admin.ok("GET", f"/key-auths/{created['id']}")["ttl"], 100)
    assert admin.ok("GET", "/consumers/ann/key-auth/k2")["ttl"] is None
    zero = admin.ok("POST", "/consumers/ann/key-auth", 201, json={"key": "k3", "ttl": 0})
    assert zero["ttl"] is None  # 0 means no expiry


def test_ttl_counts_down_from_the_creation(admin: AdminClient) -> None:
    consumer = _consumer(admin)
    cred_id = _stored_key(admin, consumer["id"], "old", age=60, ttl=3600)
    assert _left(admin.ok("GET", f"/key-auths/{cred_id}")["ttl"], 3540)
    listed = admin.ok("GET", "/key-auths")["data"]
    assert len(listed) == 1
    assert _left(listed[0]["ttl"], 3540)


def test_an_expired_credential_is_gone_before_the_purge(admin: AdminClient) -> None:
    consumer = _consumer(admin)
    expired = _stored_key(admin, consumer["id"], "gone", age=60, ttl=10)
    alive = _stored_key(admin, consumer["id"], "alive", age=60, ttl=None)
    for path in (f"/key-auths/{expired}", "/key-auths/gone", "/consumers/ann/key-auth/gone"):
        assert admin.get(path).status_code == 404, path
    assert admin.get(f"/key-auths/{expired}/consumer").status_code == 404
    assert [c["id"] for c in admin.ok("GET", "/key-auths")["data"]] == [alive]
    assert [c["id"] for c in admin.ok("GET", "/consumers/ann/key-auth")["data"]] == [alive]
    assert admin.patch(f"/key-auths/{expired}", json={"tags": ["x"]}).status_code == 404
    # the row is still stored (no purge ran); the API acts as if it were not
    assert admin.loop.run(admin.store.get("keyauth_credentials", expired)) is not None
    again = admin.ok("POST", "/consumers/ann/key-auth", 201, json={"key": "gone"})
    assert again["id"] != expired
    assert admin.ok("GET", "/key-auths/gone")["id"] == again["id"]


def test_lists_fill_their_pages_past_expired_credentials(admin: AdminClient) -> None:
    consumer = _consumer(admin)
    alive = []
    for index in range(7):
        expired = index % 3 != 0  # 0, 3, 6 alive
        cred = _stored_key(admin, consumer["id"], f"k{index}", age=60, ttl=5 if expired else None)
        if not expired:
            alive.append(cred)
    first = admin.ok("GET", "/key-auths?size=2")
    assert len(first["data"]) == 2
    second = admin.ok("GET", first["next"])
    assert [c["id"] for c in first["data"] + second["data"]] == alive
    assert second["next"] is None


def test_update_with_ttl_counts_from_now_and_put_without_ttl_clears_it(
    admin: AdminClient,
) -> None:
    consumer = _consumer(admin)
    cred_id = _stored_key(admin, consumer["id"], "k", age=60, ttl=90)
    patched = admin.ok("PATCH", f"/key-auths/{cred_id}", json={"ttl": 100})
    assert _left(patched["ttl"], 100)  # now + 100, not created_at + 100
    kept = admin.ok("PATCH", f"/key-auths/{cred_id}", json={"tags": ["t"]})
    assert _left(kept["ttl"], 100)  # a PATCH without ttl keeps the expiry
    replaced = admin.ok("PUT", f"/key-auths/{cred_id}", json={"key": "k", "consumer": "ann"})
    assert replaced["ttl"] is None
    put_new = admin.ok("PUT", "/consumers/ann/key-auth/fresh", json={"ttl": 50})
    assert _left(put_new["ttl"], 50)


@pytest.mark.parametrize("value", [-1, 1.5, "soon", True, 100_000_001])
def test_a_bad_ttl_is_an_invalid_option(admin: AdminClient, value: object) -> None:
    _consumer(admin)
    response = admin.post("/consumers/ann/key-auth", json={"ttl": value})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == 11
    assert body["name"] == "invalid options"
    assert body["message"] == "invalid option (ttl: must be an integer between 0 and 100000000)"
    assert body["fields"] == {"ttl": "must be an integer between 0 and 100000000"}


def test_ttl_on_an_entity_without_ttl_is_refused(admin: AdminClient) -> None:
    response = admin.post("/services", json={"name": "s", "host": "h.internal", "ttl": 10})
    assert response.status_code == 400
    assert response.json()["code"] == 11
    assert response.json()["message"] == "invalid option (ttl: cannot be used with 'services')"


def test_a_form_body_ttl_is_a_number(admin: AdminClient) -> None:
    _consumer(admin)
    created = admin.ok("POST", "/consumers/ann/key-auth", 201, data={"key": "f", "ttl": "30"})
    assert _left(created["ttl"], 30)
