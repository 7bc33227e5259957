"""The DP server certificate of replicas on one store, on SQLite and PostgreSQL: one root for
all of them, and a replica reached at names the first certificate does not cover gets a
certificate of its own from that root, which a client trusting the root accepts for those
names."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest
from mesh_cp_ha_kit import store_url_for

from meshgate.controlplane.ca.manager import utc_now
from meshgate.controlplane.distribution import ServerTLS, server_tls
from meshgate.controlplane.distribution.certs import TLS_DOC_TYPE, covers
from meshgate.controlplane.distribution.server import server_ssl_context
from meshgate.store import Store, open_store

KINDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.services)]


async def _handshake(tls: ServerTLS, ca_file: Path, name: str) -> None:
    """A TLS handshake with a server presenting ``tls``, checked as a sidecar given the root
    checks it (chain and ``name``); ``ssl.SSLCertVerificationError`` when it fails."""

    async def answer(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=server_ssl_context(tls))
    port = server.sockets[0].getsockname()[1]
    try:
        client = ssl.create_default_context(cafile=str(ca_file))
        _, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client, server_hostname=name
        )
        writer.close()
    finally:
        server.close()


@pytest.mark.parametrize("kind", KINDS)
def test_each_replica_serves_its_own_names_under_one_root(tmp_path: Path, kind: str) -> None:
    async def scenario(url: str) -> None:
        stores: list[Store] = [await open_store(url) for _ in range(3)]
        now = utc_now()
        try:
            first = await server_tls(stores[0], now=now, extra_names=("cp-a.mesh.test",))
            # replicas started together with the same new names make one certificate
            second = await asyncio.gather(
                *(server_tls(s, now=now, extra_names=("CP-B.mesh.test",)) for s in stores)
            )
            assert len({tls.cert for tls in second}) == 1
            again = await server_tls(stores[1], now=now, extra_names=("cp-b.mesh.test", "::1"))
            assert again.cert == second[0].cert  # the same set of names: the same leaf
            assert {tls.ca_cert for tls in [first, *second]} == {first.ca_cert}
            assert first.cert != second[0].cert
            assert covers(second[0].cert, ("cp-b.mesh.test", "localhost", "127.0.0.1"))
            assert not covers(first.cert, ("cp-b.mesh.test",))
            # names the first leaf covers: the first leaf (fingerprints stay the same)
            plain = await server_tls(stores[2], now=now, extra_names=("cp-a.mesh.test",))
            assert plain.cert == first.cert
            assert (await server_tls(stores[2], now=now)).cert == first.cert
            assert len((await stores[0].list(TLS_DOC_TYPE)).data) == 2

            ca_file = tmp_path / "dp-ca.pem"
            ca_file.write_text(first.ca_cert)
            await _handshake(second[0], ca_file, "cp-b.mesh.test")
            await _handshake(first, ca_file, "cp-a.mesh.test")
            await _handshake(second[0], ca_file, "localhost")
            with pytest.raises(ssl.SSLCertVerificationError):
                await _handshake(first, ca_file, "cp-b.mesh.test")
        finally:
            for store in stores:
                await store.close()

    with store_url_for(kind, tmp_path) as url:
        asyncio.run(scenario(url))


def test_material_made_before_roots_were_kept_is_served_as_it_is(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = await open_store(f"sqlite:///{tmp_path}/cp.db")
        try:
            made = await server_tls(store, now=utc_now())
            doc = await store.get(TLS_DOC_TYPE, "dp-server")
            assert doc is not None
            assert "ca_key" in doc
            await store.upsert(
                TLS_DOC_TYPE, "dp-server", {k: v for k, v in doc.items() if k != "ca_key"},
                unique_keys=(),
            )  # fmt: skip
            served = await server_tls(store, now=utc_now(), extra_names=("new.mesh.test",))
            assert served == made  # no root key to sign a new leaf with: unchanged, warned
            assert len((await store.list(TLS_DOC_TYPE)).data) == 1
        finally:
            await store.close()

    asyncio.run(scenario())
