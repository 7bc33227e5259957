"""Workload certificates over distribution: CSR-signed (the key stays on the sidecar), SPIFFE
ids, rotation at 2/3 of the lifetime as a new snapshot version."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
from collections.abc import AsyncIterator
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from mesh_cp_kit import (
    ControlPlane,
    call,
    control_plane,
    dataplane_doc,
    eventually,
    http_get,
    put_ok,
    start_sidecar,
)

from meshgate.controlplane.ca import StoreCAStorage, issued_by, spiffe_ids_of
from meshgate.demo.upstreams import start_echo_upstream
from testkit import free_port

SECURE_MESH = {
    "mtls": {
        "enabledBackend": "ca-1",
        "backends": [
            {"name": "ca-1", "type": "builtin", "dpCert": {"rotation": {"expiration": "1h"}}}
        ],
    }
}


def test_workload_certificates_are_signed_from_csrs_and_rotated(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with control_plane(tmp_path) as cp:
            await put_ok(cp, "/meshes/secure", SECURE_MESH)
            token = await cp.tokens.issue("secure")
            doc = dataplane_doc(
                "backend-1", inbounds=[("backend", free_port(), free_port())], mesh="secure"
            )
            sidecar = await start_sidecar(cp.dp_port, token, doc, tmp_path / "backend-1")
            try:
                first = await sidecar.wait_version(lambda v: v is not None)
                pushed = cp.engine.sessions[("secure", "backend-1")].pushed
                assert pushed is not None
                assert pushed.version == first
                workload = next(c for c in pushed.certificates if c.id == "mesh-workload")
                assert workload.key == ""  # the CP never had the key
                assert spiffe_ids_of(workload.cert) == ["spiffe://secure/backend"]
                root = await StoreCAStorage(cp.store).get_root("secure", "ca-1")
                assert root is not None
                assert issued_by(workload.cert, root)
                assert [c.cert for c in pushed.ca_certificates] == [root.cert]
                # the certificate is for the key kept in the sidecar's state directory
                key_pem = (tmp_path / "backend-1" / "key.pem").read_bytes()
                key = serialization.load_pem_private_key(key_pem, password=None)
                leaf = x509.load_pem_x509_certificate(workload.cert.encode())
                assert _spki(leaf.public_key()) == _spki(key.public_key())
                cached = (tmp_path / "backend-1" / "snapshot.json").read_text()
                assert "PRIVATE KEY" not in cached
                assert first in cached

                # nothing is due yet
                assert await cp.engine.check_rotation() == 0
                cp.clock.now += datetime.timedelta(minutes=41)  # past 2/3 of 1h
                assert await cp.engine.check_rotation() == 1
                second = await sidecar.wait_version(lambda v: v not in (None, first))
                renewed = cp.engine.sessions[("secure", "backend-1")].pushed
                assert renewed is not None
                assert renewed.version == second
                new_cert = next(c for c in renewed.certificates if c.id == "mesh-workload")
                assert new_cert.cert != workload.cert
                new_leaf = x509.load_pem_x509_certificate(new_cert.cert.encode())
                assert new_leaf.not_valid_after_utc > leaf.not_valid_after_utc
                await eventually(
                    lambda: cp.engine.statuses[("secure", "backend-1")].acked_version == second
                )
                overview = await call(cp, "GET", "/meshes/secure/dataplanes/backend-1/_overview")
                certificate = overview.json()["status"]["certificate"]
                assert certificate["regenerations"] == 1
                assert certificate["expiration"] == new_leaf.not_valid_after_utc.isoformat()
            finally:
                await sidecar.stop()

    asyncio.run(scenario())


def _spki(public_key: object) -> bytes:
    assert hasattr(public_key, "public_bytes")
    return public_key.public_bytes(  # type: ignore[no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@contextlib.asynccontextmanager
async def two_sidecars(
    cp: ControlPlane, tmp_path: Path, *, allow_all: bool = True
) -> AsyncIterator[tuple[int, int]]:
    """backend-1 (inbound) and web-1 (outbound to backend) in the mTLS mesh ``secure``;
    yields (web's outbound port, backend's inbound port)."""
    app, _ = await start_echo_upstream("backend-app")
    app_port = app.sockets[0].getsockname()[1]
    inbound_port, outbound_port = free_port(), free_port()
    await put_ok(cp, "/meshes/secure", SECURE_MESH)
    if not allow_all:
        await call(cp, "DELETE", ALLOW_ALL)
    token = await cp.tokens.issue("secure")
    backend = await start_sidecar(
        cp.dp_port, token,
        dataplane_doc("backend-1", [("backend", inbound_port, app_port)], mesh="secure"),
        tmp_path / "backend-1",
    )  # fmt: skip
    web = await start_sidecar(
        cp.dp_port, token,
        dataplane_doc("web-1", outbounds=[("backend", outbound_port)], mesh="secure"),
        tmp_path / "web-1",
    )  # fmt: skip
    try:
        await web.wait_version(lambda v: v is not None)
        await backend.wait_version(lambda v: v is not None)
        yield outbound_port, inbound_port
    finally:
        await web.stop()
        await backend.stop()
        app.close()


ALLOW_ALL = "/meshes/secure/meshtrafficpermissions/allow-all-secure"


def test_traffic_between_sidecars_is_mtls(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with control_plane(tmp_path) as cp, two_sidecars(cp, tmp_path) as ports:
            outbound_port, inbound_port = ports
            await eventually(lambda: _status(outbound_port, 200))
            # a plain client cannot talk to the mTLS inbound
            assert not await _status(inbound_port, 200)

    asyncio.run(scenario())


def test_without_a_permission_traffic_is_denied(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with (
            control_plane(tmp_path) as cp,
            two_sidecars(cp, tmp_path, allow_all=False) as ports,
        ):
            await eventually(lambda: _status(ports[0], 403))

    asyncio.run(scenario())


def test_a_permission_change_applies_to_live_traffic(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with control_plane(tmp_path) as cp, two_sidecars(cp, tmp_path) as ports:
            await eventually(lambda: _status(ports[0], 200))
            assert (await call(cp, "DELETE", ALLOW_ALL)).status_code == 200
            await eventually(lambda: _status(ports[0], 403), timeout=5)

    asyncio.run(scenario())


async def _status(port: int, expected: int) -> bool:
    try:
        status, _ = await http_get(port, "/")
    except OSError:
        return False
    return status == expected
