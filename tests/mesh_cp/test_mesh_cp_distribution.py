"""Distribution: admission by token, pushes of changed snapshots only, ACK/NACK, CP restarts."""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
from pathlib import Path

import pytest
from mesh_cp_kit import (
    call,
    control_plane,
    dataplane_doc,
    eventually,
    http_get,
    put_ok,
    start_cp,
    start_sidecar,
)

from meshgate.agent.dataplane.client import Refused
from meshgate.agent.dataplane.protocol import MessageDecoder, message
from meshgate.demo.upstreams import start_echo_upstream
from meshgate.store import open_store
from testkit import free_port

TIMEOUT_SPEC = {
    "targetRef": {"kind": "Mesh"},
    "to": [{"targetRef": {"kind": "Mesh"}, "default": {"http": {"requestTimeout": "7s"}}}],
}


def test_traffic_flows_outbound_to_inbound_and_only_changed_snapshots_are_pushed(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        app, _ = await start_echo_upstream("backend-app")
        app_port = app.sockets[0].getsockname()[1]
        inbound_port, outbound_port = free_port(), free_port()
        async with control_plane(tmp_path) as cp:
            backend_token = await cp.tokens.issue(
                "default", name="backend-1", tags={"kuma.io/service": "backend"}
            )
            backend = await start_sidecar(
                cp.dp_port,
                backend_token,
                dataplane_doc("backend-1", inbounds=[("backend", inbound_port, app_port)]),
                tmp_path / "backend-1",
            )
            web = await start_sidecar(
                cp.dp_port,
                await cp.tokens.issue("default", name="web-1"),
                dataplane_doc("web-1", outbounds=[("backend", outbound_port)]),
                tmp_path / "web-1",
            )
            try:
                await backend.wait_version(lambda v: v is not None)

                await eventually(lambda: _routes(outbound_port))
                status, body = await http_get(outbound_port, "/hello?x=1")
                assert status == 200
                assert isinstance(body, dict)
                assert body["upstream"] == "backend-app"
                assert body["url"] == "/hello?x=1"

                overview = await call(cp, "GET", "/meshes/default/dataplanes/web-1/_overview")
                status_view = overview.json()["status"]
                assert status_view["connected"] is True
                assert status_view["lastAckedVersion"] == web.agent.running.version  # type: ignore[union-attr]
                listed = (await call(cp, "GET", "/meshes/default/dataplanes+insights")).json()
                by_name = {i["dataplane"]["name"]: i["status"] for i in listed["items"]}
                assert listed["total"] == 2
                assert set(by_name) == {"web-1", "backend-1"}
                for field in ("state", "lastAckedVersion", "controlPlane", "pushes"):
                    assert by_name["web-1"][field] == status_view[field]
                assert by_name["backend-1"]["state"] == "online"
                config = (await call(cp, "GET", "/meshes/default/dataplanes/web-1/_config")).json()
                assert config["version"] == web.agent.running.version  # type: ignore[union-attr]
                assert [ln["port"] for ln in config["listeners"]] == [outbound_port]
                rules = (await call(cp, "GET", "/meshes/default/dataplanes/web-1/_rules")).json()
                assert "allow-all-default" in [p["name"] for p in rules["policies"]]

                backend_pushes = cp.engine.statuses[("default", "backend-1")].pushes
                web_pushes = cp.engine.statuses[("default", "web-1")].pushes
                before = web.agent.running.version  # type: ignore[union-attr]
                # a change in another mesh recomputes nothing here
                await put_ok(cp, "/meshes/other", {})
                await put_ok(cp, "/meshes/other/meshtimeouts/t", {"spec": TIMEOUT_SPEC})
                # a route for a destination web-1 does not call changes no snapshot
                route = {
                    "targetRef": {"kind": "Mesh"},
                    "to": [
                        {
                            "targetRef": {"kind": "MeshService", "name": "elsewhere"},
                            "rules": [
                                {
                                    "matches": [{"path": {"type": "PathPrefix", "value": "/v2"}}],
                                    "default": {
                                        "backendRefs": [
                                            {"kind": "MeshService", "name": "elsewhere"}
                                        ]
                                    },
                                }
                            ],
                        }
                    ],
                }
                await put_ok(cp, "/meshes/default/meshhttproutes/r", {"spec": route})
                await cp.engine.reload()  # returns once every change so far is handled
                assert cp.engine.statuses[("default", "web-1")].pushes == web_pushes
                await put_ok(cp, "/meshes/default/meshtimeouts/a-timeout", {"spec": TIMEOUT_SPEC})
                new_version = await web.wait_version(lambda v: v != before)
                assert cp.engine.statuses[("default", "web-1")].pushes == web_pushes + 1
                # the backend's inbound is not affected by a `to` timeout: no push
                await cp.engine.reload()
                assert cp.engine.statuses[("default", "backend-1")].pushes == backend_pushes
                await eventually(
                    lambda: cp.engine.statuses[("default", "web-1")].acked_version == new_version
                )
                web_service = next(
                    s
                    for s in web.agent.running.services
                    if s.name == "backend"  # type: ignore[union-attr]
                )
                assert web_service.request_timeout_ms == 7000
            finally:
                await web.stop()
                await backend.stop()
                app.close()
            # a graceful stop says bye: the CP forgets the dataplane
            assert await cp.store.get("mesh.dataplanes", "default/web-1") is None

    asyncio.run(scenario())


def test_a_snapshot_the_sidecar_cannot_apply_is_nacked_and_the_old_one_kept(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        app, _ = await start_echo_upstream("backend-app")
        app_port = app.sockets[0].getsockname()[1]
        inbound_port, outbound_port = free_port(), free_port()
        busy = socket.socket()
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        busy_port = busy.getsockname()[1]
        async with control_plane(tmp_path) as cp:
            token = await cp.tokens.issue("default")
            backend = await start_sidecar(
                cp.dp_port, token,
                dataplane_doc("backend-1", inbounds=[("backend", inbound_port, app_port)]),
                tmp_path / "backend-1",
            )  # fmt: skip
            doc = dataplane_doc("web-1", outbounds=[("backend", outbound_port)])
            web = await start_sidecar(cp.dp_port, token, doc, tmp_path / "web-1")
            try:
                good = await web.wait_version(lambda v: v is not None)
                await backend.wait_version(lambda v: v is not None)
                # the operator adds an outbound on a port something else holds
                changed = dataplane_doc(
                    "web-1", outbounds=[("backend", outbound_port), ("backend", busy_port)]
                )
                await put_ok(cp, "/meshes/default/dataplanes/web-1", changed)
                status = cp.engine.statuses[("default", "web-1")]
                await eventually(lambda: status.nack is not None)
                assert status.nack is not None
                assert status.nack["version"] != good
                assert "address already in use" in status.nack["error"].lower()
                assert status.acked_version == good
                assert web.agent.running.version == good  # type: ignore[union-attr]
                overview = await call(cp, "GET", "/meshes/default/dataplanes/web-1/_overview")
                assert overview.json()["status"]["lastNack"]["error"] == status.nack["error"]
                # the old snapshot still routes
                code, body = await http_get(outbound_port, "/still")
                assert code == 200
                assert isinstance(body, dict)
                assert body["url"] == "/still"
            finally:
                await web.stop()
                await backend.stop()
                app.close()
                busy.close()

    asyncio.run(scenario())


def test_bad_tokens_and_invalid_dataplanes_are_refused(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with control_plane(tmp_path) as cp:
            # a raw client: garbage token
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            reader, writer = await asyncio.open_connection("127.0.0.1", cp.dp_port, ssl=context)
            hello = message(
                "hello", protocol=1, token="not-a-jwt", csr="x",
                dataplane=dataplane_doc("dp-x", outbounds=[("a", 10001)]),
            )  # fmt: skip
            writer.write(hello)
            data = await asyncio.wait_for(reader.read(1 << 16), 10)
            answer = MessageDecoder().feed(data)
            assert answer[0]["type"] == "refused"
            assert "malformed token" in answer[0]["error"]
            writer.close()

            # a token for another name, another mesh's token, a token with tags not carried
            await put_ok(cp, "/meshes/other", {})
            cases = [
                (await cp.tokens.issue("default", name="someone-else"), "is for dataplane"),
                (await cp.tokens.issue("other", name="dp-1"), "is for mesh 'other'"),
                (
                    await cp.tokens.issue("default", tags={"kuma.io/service": "db"}),
                    "requires tag kuma.io/service=db",
                ),
            ]
            doc = dataplane_doc("dp-1", inbounds=[("web", free_port(), free_port())])
            for index, (token, reason) in enumerate(cases):
                sidecar = await start_sidecar(cp.dp_port, token, doc, tmp_path / f"dp-{index}")
                with pytest.raises(Refused, match=re.escape(reason)):
                    await asyncio.wait_for(sidecar.task, 10)
                assert sidecar.agent.running is None
            # a signing key that changed revokes older tokens
            token = await cp.tokens.issue("default", name="dp-1")
            await cp.store.delete("mesh_dp_signing_key", "default")
            await cp.tokens.issue("default", name="dp-2")  # a new key
            sidecar = await start_sidecar(cp.dp_port, token, doc, tmp_path / "dp-revoked")
            with pytest.raises(Refused, match="invalid token"):
                await asyncio.wait_for(sidecar.task, 10)
            assert await cp.store.get("mesh.dataplanes", "default/dp-1") is None

    asyncio.run(scenario())


def test_sidecar_serves_from_cache_while_the_cp_restarts_and_gets_the_next_version(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        app, _ = await start_echo_upstream("backend-app")
        app_port = app.sockets[0].getsockname()[1]
        inbound_port, outbound_port = free_port(), free_port()
        async with control_plane(tmp_path) as first_cp:
            dp_port = first_cp.dp_port
            token = await first_cp.tokens.issue("default")
        # the first CP is gone; the store (and the DP server certificate in it) remains

        store = await open_store(f"sqlite:///{tmp_path}/cp.db")
        cp = await start_cp(store, dp_port=dp_port)
        backend = await start_sidecar(
            dp_port, token,
            dataplane_doc("backend-1", inbounds=[("backend", inbound_port, app_port)]),
            tmp_path / "backend-1",
        )  # fmt: skip
        web_doc = dataplane_doc("web-1", outbounds=[("backend", outbound_port)])
        web = await start_sidecar(dp_port, token, web_doc, tmp_path / "web-1")
        try:
            first = await web.wait_version(lambda v: v is not None)
            await backend.wait_version(lambda v: v is not None)
            await eventually(lambda: _routes(outbound_port))
            await cp.stop()
            # the CP is down: traffic keeps flowing
            assert await _routes(outbound_port)
            # a sidecar restarted while the CP is down starts from its cache
            await web.stop()
            web = await start_sidecar(dp_port, token, web_doc, tmp_path / "web-1")
            assert await web.wait_version(lambda v: v == first)
            assert await _routes(outbound_port)

            cp = await start_cp(store, dp_port=dp_port)
            await eventually(lambda: ("default", "web-1") in cp.engine.sessions)
            await put_ok(cp, "/meshes/default/meshtimeouts/a-timeout", {"spec": TIMEOUT_SPEC})
            second = await web.wait_version(lambda v: v not in (None, first))
            await eventually(
                lambda: cp.engine.statuses[("default", "web-1")].acked_version == second
            )
            assert await _routes(outbound_port)
        finally:
            await web.stop()
            await backend.stop()
            await cp.stop()
            await store.close()
            app.close()

    asyncio.run(scenario())


async def _routes(port: int) -> bool:
    try:
        status, body = await http_get(port, "/ping")
    except OSError:
        return False
    return status == 200 and isinstance(body, dict) and body.get("upstream") == "backend-app"
