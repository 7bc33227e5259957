"""Per-dataplane bookkeeping of the engine: admission checks, sessions, status, certificates.

``check_hello`` validates a sidecar's ``hello`` (token, Dataplane, CSR); ``Session`` is one
connected sidecar (how to reach it, what it was given, what its snapshot depends on);
``DataplaneStatus`` is what ``_overview`` shows of a dataplane's connection, kept after it
disconnects (offline since ``disconnected_at``), and ``connection_view`` merges it with what
the replicas' records say; ``session_certificate`` signs and renews a session's workload
certificate.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509

from meshgate import snapshot
from meshgate.controlplane.ca.certs import WorkloadCert
from meshgate.controlplane.ca.manager import MeshCA
from meshgate.controlplane.distribution.certs import sign_csr
from meshgate.controlplane.distribution.liveness import Verdict
from meshgate.controlplane.distribution.tokens import DataplaneTokens, TokenRefused
from meshgate.errors import ConfigError
from meshgate.policies import parse_resource
from meshgate.resources.mesh.dataplane import Dataplane
from meshgate.resources.mesh.identity import spiffe_id, workload_dns_names, workload_uris
from meshgate.resources.mesh.mesh import Mesh

Key = tuple[str, str]  # (mesh, dataplane name)


class AdmissionRefused(Exception):
    """A sidecar is not let in (bad token, invalid dataplane, unknown mesh, bad CSR)."""


@dataclass
class DataplaneStatus:
    """What the control plane knows about one dataplane's connection (``_overview``)."""

    connected: bool = False
    connected_at: float | None = None
    disconnected_at: float | None = None
    pushed_version: str | None = None
    acked_version: str | None = None
    nack: dict[str, Any] | None = None
    compile_error: str | None = None
    cert_not_after: datetime.datetime | None = None
    cert_serial: str | None = None  # hex
    cert_regenerations: int = 0
    pushes: int = 0  # snapshots sent (only new versions are sent)

    def view(self, now: datetime.datetime) -> dict[str, Any]:
        expiry = self.cert_not_after
        return {
            "state": "online" if self.connected else "offline",
            "connected": self.connected,
            "connectedAt": self.connected_at,
            "disconnectedAt": self.disconnected_at,
            "lastPushedVersion": self.pushed_version,
            "pushes": self.pushes,
            "lastAckedVersion": self.acked_version,
            "lastNack": self.nack,
            "compileError": self.compile_error,
            "certificate": None
            if expiry is None
            else {
                "expiration": expiry.isoformat(),
                "serial": self.cert_serial,
                "expiresInSeconds": int((expiry - now).total_seconds()),
                "regenerations": self.cert_regenerations,
            },
        }


def connection_view(
    status: DataplaneStatus, verdict: Verdict | None, instance_id: str, now: datetime.datetime
) -> dict[str, Any]:
    """``_overview``'s status: ``status`` as kept here when this replica (``instance_id``)
    holds the sidecar (``verdict`` None); else ``status`` as the last holder stored it, online
    at the replica the verdict names or offline since the verdict says."""
    if verdict is None:
        return {**status.view(now), "controlPlane": instance_id}
    if verdict.online:
        status = dataclasses.replace(
            status, connected=True, connected_at=verdict.since, disconnected_at=None
        )
    else:
        status = dataclasses.replace(status, connected=False, disconnected_at=verdict.since)
    return {**status.view(now), "controlPlane": verdict.cp}


@dataclass(eq=False)
class Session:
    """One connected sidecar: how to reach it and what it was given."""

    key: Key
    csr: str
    send: Callable[[bytes], None]
    close: Callable[[], None]
    cert: WorkloadCert | None = None
    root_cert: str | None = None
    pushed: snapshot.Snapshot | None = None
    running_version: str | None = None
    closed: bool = field(default=False)
    # the services whose endpoints the pushed snapshot holds (None: not compiled yet, or
    # the compile failed): a change of another dataplane recompiles only the sessions it reaches
    depends_on: frozenset[str] | None = None


async def check_hello(tokens: DataplaneTokens, hello: dict[str, Any]) -> tuple[Dataplane, str]:
    """The hello's Dataplane and CSR, once its token admits that Dataplane."""
    try:
        claims = await tokens.verify(str(hello.get("token", "")))
        resource = parse_resource(hello.get("dataplane"))
        if not isinstance(resource, Dataplane):
            raise AdmissionRefused("the hello's dataplane is not a Dataplane resource")
        claims.admit(resource)
    except TokenRefused as exc:
        raise AdmissionRefused(str(exc)) from None
    except ConfigError as exc:
        details = "; ".join(str(v) for v in exc.violations)
        raise AdmissionRefused(f"invalid dataplane: {details}") from None
    csr = str(hello.get("csr", ""))
    try:
        x509.load_pem_x509_csr(csr.encode())
    except ValueError:
        raise AdmissionRefused("the hello's csr is not a PEM certificate request") from None
    return resource, csr


async def session_certificate(
    ca: MeshCA,
    session: Session,
    status: DataplaneStatus,
    mesh: Mesh,
    dataplane: Dataplane,
    now: datetime.datetime,
) -> WorkloadCert:
    """The session's workload certificate, (re)signed from its CSR when due."""
    backend = mesh.enabled_backend()
    assert backend is not None
    root = await ca.root_for(mesh, backend)
    uris = workload_uris(dataplane) or [spiffe_id(mesh.name, dataplane.name)]
    current = session.cert
    if (
        current is not None
        and current.uris == tuple(uris)
        and session.root_cert == root.cert
        and not current.needs_rotation(now)
    ):
        return current
    issued = sign_csr(
        root,
        session.csr,
        uris,
        now=now,
        ttl_seconds=backend.workload_ttl_ms / 1000,
        dns_names=workload_dns_names(dataplane),
        common_name=dataplane.name,
    )
    session.cert, session.root_cert = issued, root.cert
    if current is not None:
        status.cert_regenerations += 1
    status.cert_not_after = issued.not_after
    status.cert_serial = format(
        x509.load_pem_x509_certificate(issued.cert.encode()).serial_number, "x"
    )
    return issued
