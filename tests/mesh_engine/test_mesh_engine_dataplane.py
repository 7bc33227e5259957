"""The engine runs what ``compile_dataplane`` emits: two sidecars (web → backend) over mesh
mTLS, HTTP and TCP, with MeshTrafficPermission deciding who gets through."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Sequence
from typing import Any

import pytest
from mesh_engine_kit import (
    close,
    closed_without_data,
    connect,
    get,
    pki,
    proxy,
    run,
    start_app,
    start_echo,
)

from meshgate import snapshot
from meshgate.compiler.mesh import compile_dataplane
from meshgate.compiler.mesh_tls import MeshTLSMaterial
from meshgate.controlplane.ca import issue_workload
from meshgate.policies import parse_resource
from meshgate.resources.mesh import Dataplane, Mesh, Policy

MESH = "default"


def _resource(doc: dict[str, Any]) -> Any:
    return parse_resource(doc)


def mesh_resource() -> Mesh:
    resource = _resource(
        {
            "type": "Mesh",
            "name": MESH,
            "mtls": {
                "enabledBackend": "ca",
                "mode": "strict",
                "backends": [{"name": "ca", "type": "builtin"}],
            },
        }
    )
    assert isinstance(resource, Mesh)
    return resource


def dataplane(
    name: str, inbounds: Sequence[dict[str, Any]], outbounds: Sequence[dict[str, Any]] = ()
) -> Dataplane:
    resource = _resource(
        {
            "type": "Dataplane",
            "mesh": MESH,
            "name": name,
            "networking": {
                "address": "127.0.0.1",
                "inbound": list(inbounds),
                "outbound": list(outbounds),
            },
        }
    )
    assert isinstance(resource, Dataplane)
    return resource


def permission(client: str) -> Policy:
    resource = _resource(
        {
            "type": "MeshTrafficPermission",
            "name": "allow-one",
            "mesh": MESH,
            "spec": {
                "targetRef": {"kind": "Mesh"},
                "from": [
                    {
                        "targetRef": {"kind": "MeshService", "name": client},
                        "default": {"action": "Allow"},
                    }
                ],
            },
        }
    )
    assert isinstance(resource, Policy)
    return resource


def material(services: Sequence[str]) -> MeshTLSMaterial:
    now = datetime.datetime.now(datetime.UTC)
    uris = [f"spiffe://{MESH}/{service}" for service in services]
    workload = issue_workload(pki().root, uris, now=now)
    return MeshTLSMaterial(workload.cert, workload.key, (("ca", pki().root.cert),))


def with_free_ports(snap: snapshot.Snapshot) -> snapshot.Snapshot:
    """The snapshot with its listeners on ports the system picks (no clash between runs)."""
    listeners = tuple(ln.model_copy(update={"port": 0}) for ln in snap.listeners)
    return snap.model_copy(update={"listeners": listeners}).with_version()


@pytest.mark.parametrize("allowed_client", ["web", "somebody-else"])
def test_web_reaches_backend_over_http_and_tcp(allowed_client: str) -> None:
    async def main() -> None:
        _, app_port, counters = await start_app()
        echo = await start_echo()
        mesh = mesh_resource()
        policies = [permission(allowed_client)]

        def backend(http_port: int, tcp_port: int) -> Dataplane:
            return dataplane(
                "backend-1",
                [
                    {"port": http_port, "servicePort": app_port, "protocol": "http",
                     "tags": {"kuma.io/service": "backend"}},
                    {"port": tcp_port, "servicePort": echo.port, "protocol": "tcp",
                     "tags": {"kuma.io/service": "backend-tcp"}},
                ],
            )  # fmt: skip

        placeholder = backend(1, 2)
        backend_snap = compile_dataplane(
            mesh, placeholder, [placeholder], policies, material(["backend", "backend-tcp"])
        )
        async with proxy(with_free_ports(backend_snap)) as backend_px:
            inbound_ports = [
                backend_px.ports[ln.name] for ln in backend_snap.listeners
            ]  # inbound http, inbound tcp
            backend_dp = backend(*inbound_ports)
            web_dp = dataplane(
                "web-1",
                [{"port": 1, "servicePort": 3, "tags": {"kuma.io/service": "web"}}],
                [
                    {"port": 3000, "tags": {"kuma.io/service": "backend"}},
                    {"port": 3001, "tags": {"kuma.io/service": "backend-tcp"}},
                ],
            )
            web_snap = compile_dataplane(
                mesh, web_dp, [backend_dp, web_dp], policies, material(["web"])
            )
            async with proxy(with_free_ports(web_snap)) as web_px:
                reader, writer = await connect(web_px.ports["outbound:127.0.0.1:3000"], tls=False)
                response = await get(reader, writer, "/orders")
                await close(writer)
                reader, writer = await connect(web_px.ports["outbound:127.0.0.1:3001"], tls=False)
                writer.write(b"ping")
                if allowed_client == "web":
                    echoed = await asyncio.wait_for(reader.readexactly(4), 5)
                    assert echoed == b"ping"
                else:
                    assert await closed_without_data(reader)
                await close(writer)
        if allowed_client == "web":
            assert response.status == 200
            assert response.json()["url"] == "/orders"
            assert counters.get("requests") == 1
            assert echo.connections == 1
        else:
            assert response.status == 403
            assert response.headers["meshgate-error"] == "forbidden by mesh traffic permission"
            assert counters.get("requests") is None
            assert echo.connections == 0

    run(main())
