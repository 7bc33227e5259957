"""The built-in CA: roots, workload certificates (SPIFFE ids, TTL, keys), rotation, storage,
and that the certificates really work for mutual TLS with OpenSSL."""

from __future__ import annotations

import asyncio
import datetime
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from meshgate.controlplane.ca import (
    MemoryCAStorage,
    MeshCA,
    StoreCAStorage,
    generate_root,
    issue_workload,
    issued_by,
    load_provided,
    needs_rotation,
    spiffe_ids_of,
    uri_sans_of,
)
from meshgate.policies import parse_resource
from meshgate.proxy.tls.certs import generate_ca, generate_self_signed
from meshgate.resources.mesh import Dataplane, Mesh
from meshgate.store import open_store

NOW = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)


def mesh(**mtls: object) -> Mesh:
    doc = {
        "type": "Mesh",
        "name": "m1",
        "mtls": {"enabledBackend": "ca-1", "backends": [{"name": "ca-1", "type": "builtin"}]}
        | mtls,
    }
    resource = parse_resource(doc)
    assert isinstance(resource, Mesh)
    return resource


def dataplane(name: str = "dp-1", service: str = "orders", **tags: str) -> Dataplane:
    resource = parse_resource(
        {
            "type": "Dataplane",
            "mesh": "m1",
            "name": name,
            "networking": {
                "address": "127.0.0.1",
                "inbound": [{"port": 20000, "tags": {"kuma.io/service": service, **tags}}],
            },
        }
    )
    assert isinstance(resource, Dataplane)
    return resource


class Clock:
    def __init__(self, now: datetime.datetime) -> None:
        self.now = now

    def __call__(self) -> datetime.datetime:
        return self.now


def test_workload_certificate_carries_spiffe_id_tags_and_short_ttl() -> None:
    root = generate_root("m1", now=NOW)
    workload = issue_workload(
        root,
        ["spiffe://m1/orders", "kuma://version/v2"],
        now=NOW,
        ttl_seconds=3600,
        dns_names=["orders.mesh"],
    )
    cert = x509.load_pem_x509_certificate(workload.cert.encode())
    assert spiffe_ids_of(workload.cert) == ["spiffe://m1/orders"]
    assert uri_sans_of(workload.cert) == ["spiffe://m1/orders", "kuma://version/v2"]
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["orders.mesh"]
    assert cert.not_valid_after_utc - NOW == datetime.timedelta(hours=1)
    public_key = cert.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert public_key.curve.name == "secp256r1"
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert issued_by(workload.cert, root)
    assert not issued_by(workload.cert, generate_root("other", now=NOW))
    assert spiffe_ids_of(root.cert) == ["spiffe://m1"]


def test_rotation_is_due_at_two_thirds_of_the_lifetime() -> None:
    root = generate_root("m1", now=NOW)
    workload = issue_workload(root, ["spiffe://m1/a"], now=NOW, ttl_seconds=3000)
    lifetime = workload.not_after - workload.not_before
    due = workload.not_before + lifetime * 2 / 3
    assert not needs_rotation(workload.cert, due - datetime.timedelta(seconds=1))
    assert needs_rotation(workload.cert, due)
    assert needs_rotation(workload.cert, workload.not_after + datetime.timedelta(seconds=1))
    assert workload.needs_rotation(due)
    assert not workload.needs_rotation(NOW)


def test_rsa_root_when_rsa_bits_are_given() -> None:
    root = generate_root("m1", now=NOW, rsa_bits=2048)
    assert "RSA" in type(x509.load_pem_x509_certificate(root.cert.encode()).public_key()).__name__
    assert issued_by(issue_workload(root, ["spiffe://m1/a"], now=NOW).cert, root)


def test_provided_ca_is_checked() -> None:
    ca = generate_ca("provided")
    assert load_provided(ca.cert, ca.key).cert == ca.cert
    leaf_cert, leaf_key = generate_self_signed(["x.example"])
    with pytest.raises(ValueError, match="not a CA"):
        load_provided(leaf_cert, leaf_key)
    with pytest.raises(ValueError, match="does not belong"):
        load_provided(ca.cert, generate_ca("other").key)


def test_mesh_ca_reuses_until_due_then_rotates() -> None:
    clock = Clock(NOW)
    authority = MeshCA(MemoryCAStorage(), clock=clock)
    the_mesh = mesh(
        backends=[{"name": "ca-1", "type": "builtin", "dpCert": {"rotation": {"expiration": "3h"}}}]
    )

    async def run() -> None:
        first = await authority.workload_for(the_mesh, dataplane())
        assert first is not None
        assert first.not_after - first.not_before == datetime.timedelta(hours=3, seconds=10)
        clock.now = NOW + datetime.timedelta(hours=1)
        assert await authority.workload_for(the_mesh, dataplane()) is first
        clock.now = NOW + datetime.timedelta(hours=2, minutes=1)
        second = await authority.workload_for(the_mesh, dataplane())
        assert second is not None
        assert second is not first
        # identities changed (new tag) -> reissued at once
        third = await authority.workload_for(the_mesh, dataplane(version="v9"))
        assert third is not None
        assert "kuma://version/v9" in third.uris
        assert authority.issued == 3
        material = await authority.material_for(the_mesh, dataplane(version="v9"))
        assert material is not None
        assert material.workload_cert == third.cert
        assert [backend for backend, _ in material.trusted_roots] == ["ca-1"]

    asyncio.run(run())


def test_mesh_ca_without_mtls_gives_nothing() -> None:
    authority = MeshCA(MemoryCAStorage(), clock=Clock(NOW))
    plain = parse_resource({"type": "Mesh", "name": "m1"})
    assert isinstance(plain, Mesh)
    assert asyncio.run(authority.material_for(plain, dataplane())) is None


def test_root_is_persisted_in_the_store_and_shared(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'ca.db'}"

    async def run() -> None:
        store = await open_store(url)
        try:
            first = await MeshCA(StoreCAStorage(store), clock=Clock(NOW)).root_for(
                mesh(),
                mesh().enabled_backend(),  # type: ignore[arg-type]
            )
            doc = await store.get("mesh_ca", "m1.ca-1")
            assert doc is not None
            assert doc["cert"] == first.cert
            # a second control plane (fresh manager) finds the same root
            again = await MeshCA(StoreCAStorage(store), clock=Clock(NOW)).root_for(
                mesh(),
                mesh().enabled_backend(),  # type: ignore[arg-type]
            )
            assert again == first
            # losing a creation race keeps the stored root
            storage = StoreCAStorage(store)
            kept = await storage.create_root("m1", "ca-1", generate_root("m1", now=NOW))
            assert kept == first
        finally:
            await store.close()

    asyncio.run(run())


def test_provided_backend_and_trust_of_every_backend(tmp_path: Path) -> None:
    provided = generate_ca("mine")
    key_file = tmp_path / "ca.key"
    key_file.write_text(provided.key, encoding="ascii")
    the_mesh = mesh(
        enabledBackend="mine",
        backends=[
            {"name": "old", "type": "builtin"},
            {
                "name": "mine",
                "type": "provided",
                "conf": {"cert": {"inlineString": provided.cert}, "key": {"file": str(key_file)}},
            },
        ],
    )
    authority = MeshCA(MemoryCAStorage(), clock=Clock(NOW))
    material = asyncio.run(authority.material_for(the_mesh, dataplane()))
    assert material is not None
    assert [name for name, _ in material.trusted_roots] == ["mine", "old"]
    assert material.trusted_roots[0][1] == provided.cert
    assert issued_by(material.workload_cert, load_provided(provided.cert, provided.key))


def test_workload_certificates_work_for_mutual_tls(tmp_path: Path) -> None:
    """A client and a server with workload certificates complete a TLS handshake verifying
    each other against the mesh root, and each sees the other's SPIFFE id."""
    root = generate_root("m1", now=datetime.datetime.now(datetime.UTC))
    now = datetime.datetime.now(datetime.UTC)
    server = issue_workload(root, ["spiffe://m1/server"], now=now)
    client = issue_workload(root, ["spiffe://m1/client"], now=now)
    tmp = tmp_path
    for name, text in {
        "root.pem": root.cert,
        "server.pem": server.cert,
        "server.key": server.key,
        "client.pem": client.cert,
        "client.key": client.key,
    }.items():
        (tmp / name).write_text(text, encoding="ascii")
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(tmp / "server.pem", tmp / "server.key")
    server_ctx.load_verify_locations(tmp / "root.pem")
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.check_hostname = False  # peers are checked by SPIFFE id, not host name
    client_ctx.load_cert_chain(tmp / "client.pem", tmp / "client.key")
    client_ctx.load_verify_locations(tmp / "root.pem")
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    client_side = client_ctx.wrap_bio(c_in, c_out, server_side=False)
    server_side = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(10):
        for name, side, out, peer_in in (
            ("client", client_side, c_out, s_in),
            ("server", server_side, s_out, c_in),
        ):
            if not done[name]:
                try:
                    side.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
            peer_in.write(out.read())
        if all(done.values()):
            break
    assert all(done.values())
    server_seen = client_side.getpeercert(binary_form=True)
    client_seen = server_side.getpeercert(binary_form=True)
    assert server_seen is not None
    assert client_seen is not None
    assert spiffe_ids_of(ssl.DER_cert_to_PEM_cert(server_seen)) == ["spiffe://m1/server"]
    assert spiffe_ids_of(ssl.DER_cert_to_PEM_cert(client_seen)) == ["spiffe://m1/client"]
