"""Mesh outbounds: mTLS towards the upstream with the workload certificate, peer identity
checked against ``Service.tls_peer_ids``; and a whole sidecar-to-sidecar path."""

from __future__ import annotations

import pytest
from mesh_engine_kit import (
    BACKEND,
    FRONTEND,
    WEB,
    build,
    close,
    connect,
    get,
    inbound,
    outbound,
    pki,
    proxy,
    run,
    start_app,
    start_whoami,
)

from meshgate import snapshot


def test_upstream_sees_the_sidecar_identity() -> None:
    async def main() -> None:
        whoami = await start_whoami(pki().backend)
        async with proxy(build(outbound("out", "http", whoami.port))) as px:
            reader, writer = await connect(px.ports["out"], tls=False)
            responses = [await get(reader, writer, f"/{i}") for i in range(2)]
            await close(writer)
        whoami.server.close()
        assert [r.status for r in responses] == [200, 200]
        assert responses[0].json() == {"peer": [WEB]}
        assert whoami.connections == 1  # the pooled mTLS connection was reused

    run(main())


@pytest.mark.parametrize("expected", [("spiffe://default/other",), (BACKEND + "x", "x")])
def test_wrong_upstream_identity_is_502(expected: tuple[str, ...]) -> None:
    async def main() -> None:
        whoami = await start_whoami(pki().backend)
        snap = build(outbound("out", "http", whoami.port, peer_ids=expected))
        async with proxy(snap) as px:
            reader, writer = await connect(px.ports["out"], tls=False)
            response = await get(reader, writer)
            await close(writer)
        whoami.server.close()
        assert response.status == 502
        assert response.headers["meshgate-error"] in {
            "upstream-identity-mismatch",
            "upstream-tls-error",
        }

    run(main())


def test_upstream_certificate_of_another_ca_is_502_even_with_the_right_id() -> None:
    async def main() -> None:
        # the upstream presents "frontend" issued by a CA the mesh does not trust
        whoami = await start_whoami(pki().stranger)
        snap = build(outbound("out", "http", whoami.port, peer_ids=(FRONTEND,)))
        async with proxy(snap) as px:
            reader, writer = await connect(px.ports["out"], tls=False)
            response = await get(reader, writer)
            await close(writer)
        whoami.server.close()
        assert response.status == 502

    run(main())


def test_sidecar_to_sidecar_http() -> None:
    """client → web's outbound → (mTLS) → backend's strict inbound → app; backend allows web."""

    async def main() -> None:
        app, app_port, counters = await start_app()
        allow_web = (snapshot.PermissionRule(action="allow", identities=(WEB,)),)
        # the backend sidecar serves the "backend" certificate
        backend_in = inbound("in", "http", app_port, permissions=allow_web)
        backend_snap = build(backend_in).model_copy(
            update={
                "certificates": (
                    snapshot.Certificate(
                        id="mesh-workload", cert=pki().backend.cert, key=pki().backend.key
                    ),
                )
            }
        )
        async with proxy(backend_snap) as backend:
            web_snap = build(outbound("out", "http", backend.ports["in"]))
            async with proxy(web_snap) as web:
                reader, writer = await connect(web.ports["out"], tls=False)
                response = await get(reader, writer, "/orders")
                await close(writer)
        app.close()
        assert response.status == 200
        assert response.json()["url"] == "/orders"
        assert counters.get("requests") == 1

    run(main())
