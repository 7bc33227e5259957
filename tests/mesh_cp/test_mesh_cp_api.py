"""The Mesh API: CRUD, defaults of a new mesh, pagination, validation errors, watch, tokens."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import jwt
from mesh_cp_kit import call, control_plane, put_ok

from meshgate.controlplane.distribution.storage import STATUS_TYPE, collection_of

TIMEOUT = {
    "targetRef": {"kind": "Mesh"},
    "to": [{"targetRef": {"kind": "Mesh"}, "default": {"connectionTimeout": "2s"}}],
}


def test_collection_names_follow_kuma() -> None:
    assert collection_of("MeshRetry") == "meshretries"
    assert collection_of("MeshHTTPRoute") == "meshhttproutes"
    assert collection_of("Mesh") == "meshes"
    assert collection_of("MeshCircuitBreaker") == "meshcircuitbreakers"


def test_mesh_crud_defaults_and_pagination(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with control_plane(tmp_path) as cp:
            created = await call(cp, "PUT", "/meshes/m1", {"type": "Mesh", "name": "m1"})
            assert created.status_code == 201
            again = await call(cp, "PUT", "/meshes/m1", {"labels": {"team": "a"}})
            assert again.status_code == 200
            mesh = (await call(cp, "GET", "/meshes/m1")).json()
            assert mesh == {"type": "Mesh", "name": "m1", "labels": {"team": "a"}}
            permissions = (await call(cp, "GET", "/meshes/m1/meshtrafficpermissions")).json()
            assert [p["name"] for p in permissions["items"]] == ["allow-all-m1"]
            assert permissions["items"][0]["spec"]["from"][0]["default"]["action"] == "Allow"

            for index in range(5):
                await put_ok(cp, f"/meshes/m1/meshtimeouts/t{index}", {"spec": TIMEOUT})
            names: list[str] = []
            path: str | None = "/meshes/m1/meshtimeouts?size=2"
            pages = 0
            while path is not None:
                page = (await call(cp, "GET", path)).json()
                assert page["total"] == 6  # five plus the mesh's default
                assert len(page["items"]) <= 2
                names += [item["name"] for item in page["items"]]
                path, pages = page["next"], pages + 1
            assert pages == 3
            assert sorted(names) == sorted(["mesh-timeout-all-m1", *(f"t{i}" for i in range(5))])

            item = (await call(cp, "GET", "/meshes/m1/meshtimeouts/t3")).json()
            assert item["type"] == "MeshTimeout"
            assert item["mesh"] == "m1"
            assert item["spec"]["to"][0]["default"] == {"connectionTimeout": "2s"}
            assert (await call(cp, "DELETE", "/meshes/m1/meshtimeouts/t3")).status_code == 200
            assert (await call(cp, "GET", "/meshes/m1/meshtimeouts/t3")).status_code == 404

            assert (await call(cp, "DELETE", "/meshes/m1")).status_code == 200
            assert (await call(cp, "GET", "/meshes/m1")).status_code == 404
            # everything in the mesh went with it
            assert await cp.store.get("mesh.meshtimeouts", "m1/t0") is None

    asyncio.run(scenario())


def test_invalid_resources_get_400_with_every_field_path(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with control_plane(tmp_path) as cp:
            bad: dict[str, Any] = {
                "type": "MeshTimeout",
                "name": "other-name",
                "spec": {
                    "targetRef": {"kind": "Nope"},
                    "to": [
                        {"targetRef": {"kind": "Mesh"}, "default": {"idleTimeout": "5 parsecs"}}
                    ],
                },
            }
            response = await call(cp, "PUT", "/meshes/default/meshtimeouts/t1", bad)
            assert response.status_code == 400
            fields = {p["field"] for p in response.json()["invalid_parameters"]}
            assert "name" in fields
            assert "spec.targetRef.kind" in fields
            assert "spec.to[0].default.idleTimeout" in fields

            dataplane = {"networking": {"address": "", "inbound": [{"port": 0, "tags": {}}]}}
            response = await call(cp, "PUT", "/meshes/default/dataplanes/dp1", dataplane)
            assert response.status_code == 400
            fields = {p["field"] for p in response.json()["invalid_parameters"]}
            assert {"networking.address", "networking.inbound[0].port"} <= fields

            response = await call(cp, "PUT", "/meshes/nowhere/meshtimeouts/t1", {"spec": TIMEOUT})
            assert response.status_code == 400
            assert response.json()["invalid_parameters"][0]["field"] == "mesh"
            assert (await call(cp, "GET", "/meshes/default/widgets")).status_code == 404
            garbage = await call(cp, "PUT", "/meshes/default/meshtimeouts/t", content=b"{")
            assert garbage.status_code == 400
            # nothing was stored
            listed = (await call(cp, "GET", "/meshes/default/meshtimeouts")).json()
            assert [i["name"] for i in listed["items"]] == ["mesh-timeout-all-default"]

    asyncio.run(scenario())


def test_watch_returns_when_the_collection_changes(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with control_plane(tmp_path) as cp:
            first = (await call(cp, "GET", "/meshes/default/meshretries")).json()
            revision = first["revision"]
            watch = asyncio.ensure_future(
                call(cp, "GET", f"/meshes/default/meshretries?watch=true&revision={revision}")
            )
            # a change to another collection does not end the watch
            await put_ok(cp, "/meshes/default/meshtimeouts/t1", {"spec": TIMEOUT})
            await asyncio.sleep(0.3)
            assert not watch.done()
            retry = {
                "targetRef": {"kind": "Mesh"},
                "to": [{"targetRef": {"kind": "Mesh"}, "default": {"http": {"numRetries": 1}}}],
            }
            await put_ok(cp, "/meshes/default/meshretries/r1", {"spec": retry})
            answer = (await asyncio.wait_for(watch, 10)).json()
            assert answer["revision"] > revision
            assert "r1" in [item["name"] for item in answer["items"]]

    asyncio.run(scenario())


def test_tokens_need_the_admin_token_when_one_is_set(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with control_plane(tmp_path, admin_token="s3cret") as cp:
            body = {"mesh": "default", "name": "dp-1", "tags": {"kuma.io/service": "web"}}
            assert (await call(cp, "POST", "/tokens/dataplane", body)).status_code == 401
            assert (await call(cp, "GET", "/meshes")).status_code == 401
            auth = {"authorization": "Bearer s3cret"}
            response = await call(cp, "POST", "/tokens/dataplane", body, headers=auth)
            assert response.status_code == 200
            claims = jwt.decode(response.text, options={"verify_signature": False})
            assert claims["mesh"] == "default"
            assert claims["name"] == "dp-1"
            assert claims["tags"] == {"kuma.io/service": "web"}
            verified = await cp.tokens.verify(response.text)
            assert verified.name == "dp-1"
            bad = await call(cp, "POST", "/tokens/dataplane", {"mesh": 3, "x": 1}, headers=auth)
            assert bad.status_code == 400
            assert {p["field"] for p in bad.json()["invalid_parameters"]} == {"mesh", "x"}

    asyncio.run(scenario())


def test_deleting_a_dataplane_or_its_mesh_deletes_its_status_record(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with control_plane(tmp_path) as cp:
            assert (await call(cp, "PUT", "/meshes/m1", {"type": "Mesh", "name": "m1"})).is_success
            dataplane = {"networking": {"address": "127.0.0.1", "inbound": [
                {"port": 9000, "tags": {"kuma.io/service": "web"}}]}}  # fmt: skip
            for mesh, name in (("m1", "d1"), ("m1", "d2"), ("default", "d1")):
                await put_ok(cp, f"/meshes/{mesh}/dataplanes/{name}", dataplane)
                ident = f"{mesh}/{name}"
                record = {"id": ident, "mesh": mesh, "name": name, "ackedVersion": "v1"}
                await cp.store.upsert(STATUS_TYPE, ident, record, unique_keys=())

            assert (await call(cp, "DELETE", "/meshes/m1/dataplanes/d1")).status_code == 200
            assert await cp.store.get(STATUS_TYPE, "m1/d1") is None
            assert await cp.store.get(STATUS_TYPE, "m1/d2") is not None
            assert (await call(cp, "DELETE", "/meshes/m1/dataplanes/d1")).status_code == 404

            assert (await call(cp, "DELETE", "/meshes/m1")).status_code == 200
            assert await cp.store.get(STATUS_TYPE, "m1/d2") is None
            assert await cp.store.get(STATUS_TYPE, "default/d1") is not None  # another mesh's

    asyncio.run(scenario())
