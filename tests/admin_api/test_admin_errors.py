"""Bad input gets Kong's status codes and error bodies, never a 500; read-only mode; the token."""

from __future__ import annotations

import pytest
from admin_kit import AdminClient, MakeAdmin


def test_schema_violation_reports_every_field(admin: AdminClient) -> None:
    response = admin.post(
        "/routes",
        json={"protocols": ["http", "nope"], "paths": ["x"], "regex_priority": "high", "bogus": 1},
    )
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == 2
    assert body["name"] == "schema violation"
    assert body["message"].startswith("4 schema violations (")
    assert body["fields"] == {
        "protocols": [
            None,
            "expected one of: http, https, grpc, grpcs, tcp, tls, tls_passthrough, udp",
        ],
        "paths": ["should start with: / (fixed path) or ~/ (regex path)"],
        "regex_priority": "Input should be a valid integer, unable to parse string as an integer",
        "bogus": "unknown field",
    }


def test_entity_level_rule_goes_under_at_entity(admin: AdminClient) -> None:
    response = admin.post("/routes", json={"protocols": ["http"]})
    assert response.status_code == 400
    assert response.json()["fields"] == {
        "@entity": [
            "must set one of 'methods', 'hosts', 'headers', 'paths' when 'protocols' is 'http'"
        ]
    }
    missing = admin.post("/services", json={})
    assert missing.json()["fields"] == {"host": "required field missing"}


def test_unique_violation_is_409_with_kong_body(admin: AdminClient) -> None:
    admin.ok("POST", "/consumers", 201, json={"username": "alice"})
    response = admin.post("/consumers", json={"username": "alice"})
    assert response.status_code == 409
    assert response.json() == {
        "code": 5,
        "name": "unique constraint violation",
        "message": "UNIQUE violation detected on '{username=\"alice\"}'",
        "fields": {"username": "alice"},
    }


def test_primary_key_violation(admin: AdminClient) -> None:
    entity_id = "2f7c1d3e-4b5a-4c6d-8e9f-0a1b2c3d4e5f"
    admin.ok("POST", "/consumers", 201, json={"id": entity_id, "username": "a"})
    response = admin.post("/consumers", json={"id": entity_id, "username": "b"})
    assert response.status_code == 400
    assert response.json()["code"] == 3
    assert response.json()["fields"] == {"id": entity_id}


def test_not_found_and_unknown_entity(admin: AdminClient) -> None:
    assert admin.get("/services/nope").json() == {
        "code": 6,
        "name": "not found",
        "message": "Not found",
    }
    assert admin.get("/services/nope").status_code == 404
    assert admin.get("/no-such-entities").status_code == 404
    assert admin.get("/no-such-entities").json() == {"message": "Not found"}
    assert admin.patch("/services/nope", json={"retries": 1}).status_code == 404
    assert admin.request("PATCH", "/services").status_code == 405


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"{not json", "application/json"),
        (b"[1, 2]", "application/json"),
        (b'{"host": NaN}', "application/json"),
        (b"\xff\xfe", "application/json"),
        (b"[" * 5000 + b"]" * 5000, "application/json"),
        (b"a=1&%%%", "application/x-www-form-urlencoded"),
    ],
)
def test_malformed_bodies_are_400(admin: AdminClient, content: bytes, content_type: str) -> None:
    response = admin.post("/services", content=content, headers={"content-type": content_type})
    assert response.status_code == 400, response.text
    assert "message" in response.json()


def test_unsupported_content_type_is_415(admin: AdminClient) -> None:
    response = admin.post("/services", content=b"host: x", headers={"content-type": "text/csv"})
    assert response.status_code == 415


def test_form_bodies_follow_kong_conventions(admin: AdminClient) -> None:
    admin.ok("POST", "/services", 201, data={"name": "svc", "host": "svc.internal", "port": "8080"})
    route = admin.ok(
        "POST",
        "/services/svc/routes",
        201,
        content=b"name=r&paths[]=/a&paths[]=/b&methods=GET&headers.x-env[]=prod",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert route["paths"] == ["/a", "/b"]
    assert route["methods"] == ["GET"]
    assert route["headers"] == {"x-env": ["prod"]}
    plugin = admin.ok(
        "POST",
        "/plugins",
        201,
        files={"name": (None, "request-termination"), "config.message": (None, "bye")},
    )
    assert plugin["config"] == {"message": "bye"}


def test_body_over_the_limit_is_413(make_admin: MakeAdmin) -> None:
    admin = make_admin(max_body_bytes=1024)
    big = {"name": "svc", "host": "svc.internal", "tags": ["t" * 100] * 20}
    response = admin.post("/services", json=big)
    assert response.status_code == 413
    assert response.json() == {"message": "Payload too large"}

    async def chunks() -> object:
        for _ in range(3):
            yield b" " * 600  # no Content-Length: caught while streaming

    streamed = admin.post(
        "/services", content=chunks(), headers={"content-type": "application/json"}
    )
    assert streamed.status_code == 413
    assert admin.get("/services").json()["data"] == []


def test_default_limit_is_ten_mebibytes(admin: AdminClient) -> None:
    response = admin.post(
        "/config",
        content=b" " * (10 * 1024 * 1024 + 1),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413


def test_read_only_refuses_writes_with_reason(make_admin: MakeAdmin) -> None:
    writable = make_admin()
    writable.ok("POST", "/services", 201, json={"name": "svc", "host": "svc.internal"})
    admin = make_admin(read_only_reason="running from meshgate.yaml (DB-less)")
    for method, path in [
        ("POST", "/services"),
        ("PUT", "/services/svc"),
        ("PATCH", "/services/svc"),
        ("DELETE", "/services/svc"),
        ("POST", "/config"),
        ("POST", "/services/svc/routes"),
    ]:
        response = admin.request(method, path, json={"host": "x.internal"})
        assert response.status_code == 405, (method, path)
        body = response.json()
        assert body["code"] == 12
        assert body["message"] == "this node is read-only: running from meshgate.yaml (DB-less)"
    assert admin.ok("GET", "/services/svc")["host"] == "svc.internal"
    validated = admin.post("/schemas/services/validate", json={"host": "x.internal"})
    assert validated.status_code == 200
    assert admin.changes == []


def test_admin_token_required_when_set(make_admin: MakeAdmin) -> None:
    admin = make_admin(admin_token="s3cret")
    assert admin.get("/").status_code == 401
    assert admin.get("/services", headers={"Kong-Admin-Token": "wrong"}).status_code == 401
    assert admin.get("/services", headers={"Kong-Admin-Token": "s3cret"}).status_code == 200
    assert admin.get("/services", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert admin.get("/services", headers={"Authorization": "Basic s3cret"}).status_code == 401
    assert admin.post("/services", json={"host": "x"}).status_code == 401


def test_bad_list_queries(admin: AdminClient) -> None:
    assert admin.get("/services?size=0").json()["code"] == 9
    assert admin.get("/services?size=1001").status_code == 400
    assert admin.get("/services?size=abc").status_code == 400
    bad_offset = admin.get("/services?offset=garbage")
    assert bad_offset.status_code == 400
    assert bad_offset.json()["code"] == 7
    mixed = admin.get("/services?tags=a,b/c")
    assert mixed.status_code == 400
    assert mixed.json()["code"] == 11
    assert admin.get("/services?tags=a,b,c,d,e,f").status_code == 400


def test_nul_characters_are_refused(admin: AdminClient) -> None:
    body = b'{"name": "cors", "config": {"x": "a\\u0000b"}}'
    response = admin.post("/plugins", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json() == {"message": "NUL characters are not allowed"}
    assert admin.get("/services/a%00b").status_code == 400
    assert (
        admin.post(
            "/config", json={"config": '_format_version: "3.0"\nservices: [{host: "a\\0"}]'}
        ).status_code
        == 400
    )
    assert admin.ok("GET", "/plugins")["data"] == []
