"""Node info, status, schemas (the defaults decK reads), validation, OpenAPI, and a real server."""

from __future__ import annotations

import asyncio
import http.client
import json

import uvloop
from admin_kit import AdminClient

from meshgate.controlplane.admin_api import (
    AVAILABLE_PLUGINS,
    NodeInfo,
    create_admin_app,
    serve_admin,
)
from meshgate.store import open_store


def test_root_reports_kong_version_and_plugins(admin: AdminClient) -> None:
    admin.ok("POST", "/plugins", 201, json={"name": "cors"})
    info = admin.ok("GET", "/")
    major, minor, _patch = (int(part) for part in info["version"].split("."))
    assert (major, minor) >= (3, 4)
    assert info["node_id"] == "9d1f4b6e-0000-4000-8000-000000000001"
    assert info["hostname"] == "test-node"
    assert info["configuration"]["database"] == admin.store.dialect  # sqlite or postgres
    assert set(info["plugins"]["available_on_server"]) == set(AVAILABLE_PLUGINS)
    assert info["plugins"]["enabled_in_cluster"] == ["cors"]
    assert info["tagline"]


def test_status_counts_and_hash_changes(admin: AdminClient) -> None:
    empty = admin.ok("GET", "/status")
    assert empty["database"] == {"reachable": True}
    assert empty["configuration_hash"] == "0" * 32
    admin.ok("PUT", "/services/svc", json={"host": "svc.internal"})
    after = admin.ok("GET", "/status")
    assert after["configuration_hash"] != empty["configuration_hash"]
    assert after["server"]["total_requests"] > empty["server"]["total_requests"]


def _fields(schema: dict[str, object]) -> dict[str, dict[str, object]]:
    entries = schema["fields"]
    assert isinstance(entries, list)
    return {name: spec for entry in entries for name, spec in entry.items()}


def test_entity_schemas_carry_kong_defaults(admin: AdminClient) -> None:
    services = _fields(admin.ok("GET", "/schemas/services"))
    assert services["retries"]["default"] == 5
    assert services["connect_timeout"]["default"] == 60000
    assert services["host"]["required"] is True
    assert services["client_certificate"]["type"] == "foreign"
    routes = _fields(admin.ok("GET", "/schemas/routes"))
    assert routes["protocols"]["default"] == ["http", "https"]
    assert routes["https_redirect_status_code"]["default"] == 426
    assert "default" not in routes["methods"]
    upstreams = _fields(admin.ok("GET", "/schemas/upstreams"))
    active = _fields(_fields(upstreams["healthchecks"])["active"])  # type: ignore[arg-type]
    assert _fields(active["healthy"])["http_statuses"]["default"] == [200, 302]  # type: ignore[arg-type]
    assert admin.ok("GET", "/schemas/keyauth_credentials")["endpoint_key"] == "key"
    assert admin.get("/schemas/nothing").status_code == 404


def test_plugin_schemas(admin: AdminClient) -> None:
    schema = _fields(admin.ok("GET", "/schemas/plugins/rate-limiting"))
    assert schema["config"] == {"type": "record", "required": True, "fields": []}
    assert schema["protocols"]["default"] == ["grpc", "grpcs", "http", "https"]
    missing = admin.get("/schemas/plugins/not-a-plugin")
    assert missing.status_code == 404
    assert missing.json()["message"] == "No plugin named 'not-a-plugin'"


def test_validate_endpoints_store_nothing(admin: AdminClient) -> None:
    ok = admin.post("/schemas/routes/validate", json={"paths": ["/a"]})
    assert ok.status_code == 200
    assert ok.json() == {"message": "schema validation successful"}
    bad = admin.post("/schemas/routes/validate", json={"paths": ["a"]})
    assert bad.status_code == 400
    assert bad.json()["code"] == 2
    assert admin.post("/schemas/plugins/validate", json={"name": "cors"}).status_code == 200
    assert admin.post("/schemas/plugins/validate", json={"name": "nope"}).status_code == 400
    assert admin.ok("GET", "/routes")["data"] == []


def test_openapi_describes_every_route(admin: AdminClient) -> None:
    document = admin.ok("GET", "/openapi.json")
    assert document["openapi"].startswith("3.")
    paths = document["paths"]
    for path in ("/services", "/services/{key}", "/services/{parent}/routes", "/config",
                 "/consumers/{parent}/key-auth/{key}", "/upstreams/{parent}/targets/{key}"):  # fmt: skip
        assert path in paths, path
    create = paths["/services"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Service"
    }
    assert {"201", "400", "409", "413"} <= set(create["responses"])
    assert "Service" in document["components"]["schemas"]
    assert "/asyncapi.json" in paths
    assert "/metrics" in paths


def test_serve_admin_on_a_real_socket() -> None:
    async def scenario() -> tuple[int, dict[str, object], int]:
        store = await open_store("sqlite://:memory:")
        app = create_admin_app(store, node_info=NodeInfo())
        server = await serve_admin(app, "127.0.0.1", 0)
        try:
            loop = asyncio.get_running_loop()

            def call() -> tuple[int, dict[str, object]]:
                conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
                conn.request("POST", "/services", body=b'{"host":"a.internal"}',
                             headers={"content-type": "application/json"})  # fmt: skip
                response = conn.getresponse()
                body = json.loads(response.read())
                conn.close()
                return response.status, body

            status, body = await loop.run_in_executor(None, call)
            return status, body, server.port
        finally:
            await server.stop()
            await store.close()

    status, body, port = uvloop.run(scenario())
    assert status == 201
    assert body["host"] == "a.internal"
    assert port > 0
