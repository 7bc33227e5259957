"""In-process replicas for the replica tests: engines on one store (one store connection
each), a fake sidecar that records what it is sent, and an mTLS mesh to admit it into."""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from meshgate.agent.dataplane.protocol import MessageDecoder
from meshgate.controlplane.ca import MeshCA, StoreCAStorage
from meshgate.controlplane.ca.manager import utc_now
from meshgate.controlplane.distribution import DataplaneTokens, DistributionEngine
from meshgate.controlplane.distribution.engine import Session
from meshgate.controlplane.distribution.storage import create_mesh
from meshgate.policies import parse_resource
from meshgate.resources.mesh.mesh import Mesh
from meshgate.store import Store, open_store

MESH = "secure"
MTLS = {"enabledBackend": "ca-1", "backends": [{"name": "ca-1", "type": "builtin"}]}


def make_csr() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake")]))
        .sign(key, hashes.SHA256())
    )
    return request.public_bytes(Encoding.PEM).decode()


@dataclass
class FakeSidecar:
    """Keeps the versions and certificate expiries of the snapshots it is sent."""

    decoder: MessageDecoder = field(default_factory=MessageDecoder)
    versions: list[str] = field(default_factory=list)
    closed: bool = False
    session: Session | None = None

    def send(self, data: bytes) -> None:
        for item in self.decoder.feed(data):
            if item["type"] == "snapshot":
                self.versions.append(item["version"])

    def close(self) -> None:
        self.closed = True


@dataclass
class Clock:
    now: datetime.datetime = field(default_factory=utc_now)

    def __call__(self) -> datetime.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += datetime.timedelta(seconds=seconds)


@dataclass
class Replica:
    store: Store
    engine: DistributionEngine
    token: str
    clock: Clock  # shared by every replica of ``replicas``

    async def admit(self, name: str, csr: str) -> FakeSidecar:
        doc = {
            "type": "Dataplane", "name": name, "mesh": MESH,
            "networking": {"address": "127.0.0.1", "inbound": [
                {"port": 9000, "tags": {"kuma.io/service": name, "kuma.io/protocol": "http"}}]},
        }  # fmt: skip
        sidecar = FakeSidecar()
        hello = {"type": "hello", "token": self.token, "dataplane": doc, "csr": csr}
        sidecar.session = await self.engine.admit(hello, sidecar.send, sidecar.close)
        return sidecar


@contextlib.asynccontextmanager
async def replicas(url: str, *names: str, **options: Any) -> AsyncIterator[list[Replica]]:
    """Engines named ``names`` on the store ``url`` (an mTLS mesh ``secure`` in it)."""
    opened: list[Replica] = []
    clock = Clock()
    try:
        for name in names:
            store = await open_store(url)
            if not opened:
                mesh = parse_resource({"type": "Mesh", "name": MESH, "mtls": MTLS})
                assert isinstance(mesh, Mesh)
                await create_mesh(store, mesh)
            tokens = DataplaneTokens(store)
            engine = DistributionEngine(
                store, ca=MeshCA(StoreCAStorage(store), clock=clock), tokens=tokens, clock=clock,
                instance_id=name, rotation_check_interval=3600, heartbeat_interval=3600,
                reconnect_grace=3600, offline_check_interval=3600, **options,
            )  # fmt: skip
            opened.append(Replica(store, engine, "", clock))
            await engine.start()
            opened[-1].token = await tokens.issue(MESH)
        yield opened
    finally:
        for replica in reversed(opened):
            await replica.engine.stop()
            await replica.store.close()
