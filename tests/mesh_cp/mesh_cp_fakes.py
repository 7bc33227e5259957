"""In-process stand-ins for the engine tests: a sidecar that only records what it is sent,
an engine on a SQLite store, dataplane documents of a numbered mesh, from-scratch compiles."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from mesh_cp_kit import Clock

from meshgate import snapshot
from meshgate.agent.dataplane.protocol import MessageDecoder
from meshgate.compiler.mesh import compile_dataplane
from meshgate.controlplane.ca import MeshCA, StoreCAStorage
from meshgate.controlplane.distribution import DataplaneTokens, DistributionEngine
from meshgate.controlplane.distribution.engine import Session
from meshgate.controlplane.distribution.state import load_state
from meshgate.controlplane.distribution.storage import ensure_mesh
from meshgate.store import Store, open_store


def make_csr() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake")]))
        .sign(key, hashes.SHA256())
    )
    return request.public_bytes(Encoding.PEM).decode()


CSR = make_csr()


@dataclass
class FakeSidecar:
    """Decodes what the engine sends; keeps every snapshot version in order."""

    decoder: MessageDecoder = field(default_factory=MessageDecoder)
    kinds: list[str] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)
    closed: bool = False
    session: Session | None = None

    def send(self, data: bytes) -> None:
        for item in self.decoder.feed(data):
            self.kinds.append(item["type"])
            if item["type"] == "snapshot":
                assert snapshot.Snapshot.model_validate(item["snapshot"]).version == item["version"]
                self.versions.append(item["version"])

    def close(self) -> None:
        self.closed = True


@dataclass
class Rig:
    store: Store
    engine: DistributionEngine
    token: str
    clock: Clock
    sidecars: dict[str, FakeSidecar] = field(default_factory=dict)  # the latest per name
    replaced: list[tuple[str, FakeSidecar]] = field(default_factory=list)

    async def admit(self, doc: dict[str, Any]) -> FakeSidecar:
        sidecar = FakeSidecar()
        hello = {"type": "hello", "token": self.token, "dataplane": doc, "csr": CSR}
        sidecar.session = await self.engine.admit(hello, sidecar.send, sidecar.close)
        if doc["name"] in self.sidecars:
            self.replaced.append((doc["name"], self.sidecars[doc["name"]]))
        self.sidecars[doc["name"]] = sidecar
        return sidecar

    async def from_scratch(self) -> dict[str, snapshot.Snapshot]:
        """Every connected dataplane's snapshot compiled anew from what the store holds
        (meshes without mTLS only: no certificates involved)."""
        state = await load_state(self.store)
        found = {}
        for mesh_name, name in self.engine.sessions:
            mesh = state.meshes[mesh_name]
            dataplane = state.dataplane(mesh_name, name)
            assert dataplane is not None, name
            found[name] = compile_dataplane(
                mesh,
                dataplane,
                state.mesh_dataplanes(mesh_name),
                state.mesh_policies(mesh_name),
                None,
            )
        return found


@contextlib.asynccontextmanager
async def engine_rig(tmp_path: Path, **options: Any) -> AsyncIterator[Rig]:
    store = await open_store(f"sqlite:///{tmp_path}/engine.db")
    await ensure_mesh(store, "default")
    clock = Clock()
    tokens = DataplaneTokens(store)
    options.setdefault("rotation_check_interval", 3600)
    engine = DistributionEngine(
        store, ca=MeshCA(StoreCAStorage(store), clock=clock), tokens=tokens, clock=clock, **options
    )
    await engine.start()
    try:
        yield Rig(store, engine, await tokens.issue("default"), clock)
    finally:
        await engine.stop()
        await store.close()


def numbered_doc(
    index: int,
    services: int,
    *,
    outbound_to: int | None = None,
    address: str | None = None,
) -> dict[str, Any]:
    """``dp-NNN`` serving ``svc-(index % services)`` on 8080, optionally calling
    ``svc-<outbound_to>`` on a local port."""
    outbounds = []
    if outbound_to is not None:
        outbounds.append({"port": 20000 + index, "tags": {"kuma.io/service": f"svc-{outbound_to}"}})
    return {
        "type": "Dataplane",
        "name": f"dp-{index:03d}",
        "mesh": "default",
        "networking": {
            "address": address or f"10.0.{index // 256}.{index % 256}",
            "inbound": [
                {
                    "port": 8080,
                    "tags": {
                        "kuma.io/service": f"svc-{index % services}",
                        "kuma.io/protocol": "http",
                    },
                }
            ],
            "outbound": outbounds,
        },
    }


def endpoints_of(snap: snapshot.Snapshot, service: str) -> set[tuple[str, int]]:
    cluster = next((c for c in snap.clusters if c.name == f"mesh:{service}"), None)
    assert cluster is not None, f"no cluster for {service}"
    return {(e.host, e.port) for e in cluster.endpoints}
