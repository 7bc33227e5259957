"""CRUD through the Admin API for every entity, nested paths and cascades (Kong semantics)."""

from __future__ import annotations

import hashlib

import pytest
from admin_kit import AdminClient, MakeAdmin, make_ca, make_leaf


def test_service_create_get_patch_put_delete(admin: AdminClient) -> None:
    created = admin.ok(
        "POST", "/services", 201, json={"name": "svc", "url": "https://api.example.com/v1"}
    )
    assert created["protocol"] == "https"
    assert created["port"] == 443
    assert created["path"] == "/v1"
    assert created["retries"] == 5
    assert created["connect_timeout"] == 60000
    assert isinstance(created["created_at"], int)
    assert created["updated_at"] >= created["created_at"]
    by_name = admin.ok("GET", "/services/svc")
    by_id = admin.ok("GET", f"/services/{created['id']}")
    assert by_name == by_id == created

    patched = admin.ok("PATCH", "/services/svc", json={"retries": 2, "tags": ["a"]})
    assert patched["retries"] == 2
    assert patched["host"] == "api.example.com"
    assert patched["tags"] == ["a"]
    assert patched["created_at"] == created["created_at"]

    replaced = admin.ok("PUT", "/services/svc", json={"host": "other.internal"})
    assert replaced["id"] == created["id"]
    assert replaced["retries"] == 5
    assert replaced["tags"] == []

    admin.ok("DELETE", "/services/svc", 204)
    assert admin.get("/services/svc").status_code == 404
    admin.ok("DELETE", "/services/svc", 204)  # deleting what is gone is fine, as in Kong


def test_put_creates_by_name_and_by_id(admin: AdminClient) -> None:
    by_name = admin.ok("PUT", "/services/fresh", json={"host": "a.internal"})
    assert by_name["name"] == "fresh"
    wanted = "5b0e3d1c-8a4f-4c1e-9d2b-7f6a5e4d3c2b"
    by_id = admin.ok("PUT", f"/services/{wanted}", json={"name": "with-id", "host": "b.internal"})
    assert by_id["id"] == wanted
    mismatch = admin.put("/services/fresh", json={"name": "other", "host": "a.internal"})
    assert mismatch.status_code == 400
    assert "name" in mismatch.json()["fields"]


def test_routes_nested_under_service(admin: AdminClient) -> None:
    service = admin.ok("POST", "/services", 201, json={"name": "svc", "host": "svc.internal"})
    route = admin.ok("POST", "/services/svc/routes", 201, json={"name": "r1", "paths": ["/a"]})
    assert route["service"] == {"id": service["id"]}
    assert route["methods"] is None
    assert route["headers"] is None
    listed = admin.ok("GET", f"/services/{service['id']}/routes")
    assert [r["id"] for r in listed["data"]] == [route["id"]]
    assert admin.ok("GET", "/services/svc/routes/r1")["id"] == route["id"]
    assert admin.ok("GET", "/routes/r1/service")["id"] == service["id"]
    admin.ok("POST", "/services", 201, json={"name": "other", "host": "o.internal"})
    assert admin.get("/services/other/routes/r1").status_code == 404
    assert admin.get("/services/missing/routes").status_code == 404

    refused = admin.delete("/services/svc")
    assert refused.status_code == 400
    assert (
        refused.json()["message"] == "an existing 'routes' entity references this 'services' entity"
    )
    admin.ok("DELETE", "/services/svc/routes/r1", 204)
    admin.ok("DELETE", "/services/svc", 204)


def test_route_reference_by_name_and_missing_reference(admin: AdminClient) -> None:
    service = admin.ok("POST", "/services", 201, json={"name": "svc", "host": "svc.internal"})
    route = admin.ok("POST", "/routes", 201, json={"paths": ["/x"], "service": {"name": "svc"}})
    assert route["service"] == {"id": service["id"]}
    missing = "0b0e3d1c-8a4f-4c1e-9d2b-7f6a5e4d3c2b"
    response = admin.post("/routes", json={"paths": ["/y"], "service": {"id": missing}})
    assert response.status_code == 400
    assert response.json() == {
        "code": 4,
        "name": "foreign key violation",
        "message": f"the foreign key '{{id=\"{missing}\"}}' does not reference an existing "
        "'services' entity.",
        "fields": {"service": {"id": missing}},
    }


def test_patch_merges_records_and_revalidates(admin: AdminClient) -> None:
    admin.ok("POST", "/upstreams", 201, json={"name": "up.internal"})
    patched = admin.ok(
        "PATCH", "/upstreams/up.internal", json={"healthchecks": {"active": {"timeout": 5}}}
    )
    assert patched["healthchecks"]["active"]["timeout"] == 5
    assert patched["healthchecks"]["active"]["http_path"] == "/"  # merged, not replaced
    bad = admin.patch("/upstreams/up.internal", json={"hash_on": "header"})
    assert bad.status_code == 400
    assert "hash_on_header" in bad.json()["fields"]


def test_targets_by_id_and_address_and_cascade(admin: AdminClient) -> None:
    upstream = admin.ok("POST", "/upstreams", 201, json={"name": "up.internal"})
    target = admin.ok("POST", "/upstreams/up.internal/targets", 201, json={"target": "10.0.0.1"})
    assert target["target"] == "10.0.0.1:8000"
    assert target["weight"] == 100
    assert isinstance(target["created_at"], float | int)
    assert admin.ok("GET", "/upstreams/up.internal/targets/10.0.0.1:8000")["id"] == target["id"]
    dup = admin.post("/upstreams/up.internal/targets", json={"target": "10.0.0.1:8000"})
    assert dup.status_code == 409
    assert dup.json()["code"] == 5
    assert (
        admin.ok("PATCH", f"/upstreams/up.internal/targets/{target['id']}", json={"weight": 5})[
            "weight"
        ]
        == 5
    )
    admin.ok("PUT", f"/upstreams/{upstream['id']}/targets/10.0.0.1:8000/unhealthy", 204)
    health = admin.ok("GET", "/upstreams/up.internal/health")
    assert health["data"][0]["health"] == "UNHEALTHY"
    assert len(admin.ok("GET", "/upstreams/up.internal/targets/all")["data"]) == 1
    admin.ok("DELETE", "/upstreams/up.internal", 204)
    assert admin.store is not None
    assert admin.loop.run(admin.store.get("targets", target["id"])) is None


def test_consumer_credentials_and_cascade(admin: AdminClient) -> None:
    consumer = admin.ok("POST", "/consumers", 201, json={"username": "alice", "custom_id": "a-1"})
    key = admin.ok("POST", "/consumers/alice/key-auth", 201, json={})
    assert len(key["key"]) == 32
    assert key["consumer"] == {"id": consumer["id"]}
    given = admin.ok("POST", "/consumers/alice/key-auth", 201, json={"key": "my-key"})
    assert admin.ok("GET", "/key-auths/my-key")["id"] == given["id"]
    assert admin.ok("GET", f"/key-auths/{given['id']}/consumer")["username"] == "alice"
    clash = admin.post("/consumers/alice/key-auth", json={"key": "my-key"})
    assert clash.status_code == 409
    assert clash.json()["fields"] == {"key": "my-key"}

    basic = admin.ok(
        "POST", "/consumers/alice/basic-auth", 201, data={"username": "al", "password": "pw"}
    )
    expected = hashlib.sha1(("pw" + consumer["id"]).encode()).hexdigest()
    assert basic["password"] == expected
    renamed = admin.ok("PATCH", f"/basic-auths/{basic['id']}", json={"username": "al2"})
    assert renamed["password"] == expected  # not hashed twice
    raw = admin.ok("POST", "/consumers/alice/basic-auth?skip_hash=true", 201,
                   json={"username": "pre", "password": "0" * 40})  # fmt: skip
    assert raw["password"] == "0" * 40

    jwt = admin.ok("POST", "/consumers/alice/jwt", 201, json={})
    assert jwt["algorithm"] == "HS256"
    assert jwt["key"]
    assert jwt["secret"]
    rs = admin.post("/consumers/alice/jwt", json={"algorithm": "RS256"})
    assert rs.status_code == 400
    assert "rsa_public_key" in rs.json()["fields"]
    hmac = admin.ok("POST", "/consumers/alice/hmac-auth", 201, json={"username": "h"})
    assert hmac["secret"]
    acl = admin.ok("POST", "/consumers/alice/acls", 201, json={"group": "admins"})
    assert admin.ok("GET", "/consumers/alice/acls/admins")["id"] == acl["id"]
    assert admin.post("/consumers/alice/acls", json={"group": "admins"}).status_code == 409
    assert admin.get("/consumers/a-1/key-auth").status_code == 404  # custom_id is no endpoint key
    assert len(admin.ok("GET", "/consumers/alice/key-auth")["data"]) == 2
    assert len(admin.ok("GET", "/key-auths")["data"]) == 2
    assert admin.ok("GET", "/consumers?custom_id=a-1")["data"][0]["id"] == consumer["id"]

    admin.ok(
        "POST",
        "/consumers/alice/plugins",
        201,
        json={"name": "rate-limiting", "config": {"minute": 5}},
    )
    admin.ok("DELETE", "/consumers/alice", 204)
    for path in ("/key-auths", "/basic-auths", "/jwts", "/hmac-auths", "/acls", "/plugins"):
        assert admin.ok("GET", path)["data"] == [], path


def test_plugins_at_every_scope_and_uniqueness(admin: AdminClient) -> None:
    admin.ok("POST", "/services", 201, json={"name": "svc", "host": "svc.internal"})
    route = admin.ok("POST", "/services/svc/routes", 201, json={"name": "r", "paths": ["/"]})
    admin.ok("POST", "/consumers", 201, json={"username": "bob"})
    admin.ok("POST", "/plugins", 201, json={"name": "cors"})
    admin.ok("POST", "/services/svc/plugins", 201, json={"name": "cors"})
    on_route = admin.ok(
        "POST", "/routes/r/plugins", 201, json={"name": "cors", "config": {"origins": ["*"]}}
    )
    admin.ok("POST", "/consumers/bob/plugins", 201, json={"name": "cors"})
    both = admin.ok("POST", "/plugins", 201,
                    json={"name": "cors", "route": {"id": route["id"]}, "consumer": {"name": "bob"}})  # fmt: skip
    assert both["consumer"] is not None
    assert both["route"] == {"id": route["id"]}
    again = admin.post("/routes/r/plugins", json={"name": "cors"})
    assert again.status_code == 409
    assert again.json()["code"] == 5
    assert set(again.json()["fields"]) == {"name", "route", "service", "consumer"}
    assert len(admin.ok("GET", "/plugins")["data"]) == 5
    assert len(admin.ok("GET", "/routes/r/plugins")["data"]) == 2
    merged = admin.ok("PATCH", f"/plugins/{on_route['id']}", json={"config": {"max_age": 2}})
    assert merged["config"] == {"origins": ["*"], "max_age": 2}
    admin.ok("DELETE", "/services/svc/routes/r", 204)  # cascades to the route's plugins
    assert len(admin.ok("GET", "/plugins")["data"]) == 3
    unknown = admin.post("/plugins", json={"name": "no-such-plugin"})
    assert unknown.status_code == 400
    assert unknown.json()["fields"] == {
        "name": "plugin 'no-such-plugin' not enabled; add it to the 'plugins' configuration property"
    }


def test_certificates_snis_and_ca_certificates(admin: AdminClient) -> None:
    ca_cert, ca_key = make_ca("Test CA")
    leaf_cert, leaf_key = make_leaf(ca_cert, ca_key, "api.example.com")
    certificate = admin.ok("POST", "/certificates", 201,
                           json={"cert": leaf_cert, "key": leaf_key, "snis": ["api.example.com"]})  # fmt: skip
    assert certificate["snis"] == ["api.example.com"]
    sni = admin.ok("GET", "/snis/api.example.com")
    assert sni["certificate"] == {"id": certificate["id"]}
    admin.ok("POST", f"/certificates/{certificate['id']}/snis", 201, json={"name": "*.example.com"})
    got = admin.ok("GET", f"/certificates/{certificate['id']}")
    assert got["snis"] == ["*.example.com", "api.example.com"]
    mismatched = admin.post("/certificates", json={"cert": leaf_cert, "key": ca_key})
    assert mismatched.status_code == 400
    assert "key" in mismatched.json()["fields"]
    ca = admin.ok("POST", "/ca_certificates", 201, json={"cert": ca_cert})
    assert len(ca["cert_digest"]) == 64
    assert admin.post("/ca_certificates", json={"cert": ca_cert}).status_code == 409
    admin.ok("DELETE", f"/certificates/{certificate['id']}", 204)
    assert admin.ok("GET", "/snis")["data"] == []


@pytest.mark.parametrize("path", ["/services", "/routes", "/upstreams", "/consumers", "/plugins",
                                  "/certificates", "/snis", "/ca_certificates", "/key-auths",
                                  "/basic-auths", "/hmac-auths", "/jwts", "/acls"])  # fmt: skip
def test_every_collection_lists_empty(admin: AdminClient, path: str) -> None:
    assert admin.ok("GET", path) == {"data": [], "next": None}


def test_writes_notify_on_change_with_revision(admin: AdminClient) -> None:
    admin.ok("POST", "/services", 201, json={"name": "svc", "host": "svc.internal"})
    admin.ok("PATCH", "/services/svc", json={"retries": 1})
    admin.get("/services")
    assert len(admin.changes) == 2
    assert admin.changes[0] < admin.changes[1]
    assert admin.loop.run(admin.store.revision()) == admin.changes[-1]


def test_a_failing_on_change_hook_does_not_undo_the_write(make_admin: MakeAdmin) -> None:
    seen: list[int] = []

    async def hook(revision: int) -> None:
        seen.append(revision)
        raise RuntimeError("apply failed")

    admin = make_admin(on_change=hook)
    admin.ok("POST", "/services", 201, json={"name": "svc", "host": "svc.internal"})
    assert len(seen) == 1
    assert admin.ok("GET", "/services/svc")["host"] == "svc.internal"
