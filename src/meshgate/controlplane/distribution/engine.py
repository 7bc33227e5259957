"""The distribution engine: admitted sidecars, their certificates, and the snapshots they get.

``DistributionEngine`` keeps the mesh state (every mesh resource of the store, reloaded on
each store revision) and one ``Session`` per connected sidecar.  After a change it
recompiles only the sidecars of the meshes whose resources changed, and pushes a snapshot
only when its version (content hash) differs from the last one pushed.  Workload
certificates are signed from the sidecar's CSR and renewed at 2/3 of their lifetime (or
when the dataplane's identities or its mesh's CA change): the renewal is just another
snapshot version.  ACK/NACK results, certificate expiry and connection state are kept per
dataplane (``DataplaneStatus``) for ``inspect``.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509

from meshgate import snapshot
from meshgate.agent.dataplane.protocol import LOCAL_KEY, message
from meshgate.compiler.mesh import compile_dataplane
from meshgate.compiler.mesh_index import MeshIndex, build_mesh_index
from meshgate.compiler.mesh_rules import dataplane_rules
from meshgate.compiler.mesh_tls import MeshTLSMaterial
from meshgate.controlplane.ca.certs import WorkloadCert
from meshgate.controlplane.ca.manager import MeshCA, utc_now
from meshgate.controlplane.distribution.certs import sign_csr
from meshgate.controlplane.distribution.storage import (
    MeshState,
    entity_id,
    entity_type,
    load_state,
    put_resource,
)
from meshgate.controlplane.distribution.tokens import DataplaneTokens, TokenRefused
from meshgate.errors import ConfigError
from meshgate.policies import parse_resource
from meshgate.resources.mesh.dataplane import Dataplane
from meshgate.resources.mesh.identity import spiffe_id, workload_dns_names, workload_uris
from meshgate.resources.mesh.mesh import Mesh
from meshgate.store.api import Store
from meshgate.tasks import spawn

_log = logging.getLogger("meshgate.distribution")
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
    cert_regenerations: int = 0
    pushes: int = 0  # snapshots sent (only new versions are sent)

    def view(self, now: datetime.datetime) -> dict[str, Any]:
        expiry = self.cert_not_after
        return {
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
                "expiresInSeconds": int((expiry - now).total_seconds()),
                "regenerations": self.cert_regenerations,
            },
        }


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


class DistributionEngine:
    """Admits sidecars and keeps each one's snapshot current."""

    def __init__(
        self,
        store: Store,
        *,
        ca: MeshCA,
        tokens: DataplaneTokens,
        clock: Callable[[], datetime.datetime] = utc_now,
        rotation_check_interval: float = 1.0,
    ) -> None:
        self.store = store
        self.ca = ca
        self.tokens = tokens
        self.clock = clock
        self.rotation_check_interval = rotation_check_interval
        self.state = MeshState(revision=-1)
        self.sessions: dict[Key, Session] = {}
        self.statuses: dict[Key, DataplaneStatus] = {}
        self._indexes: dict[str, MeshIndex] = {}
        self._lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        await self.reload()
        self._tasks = [
            spawn(self._follow(), name="distribution-follow"),
            spawn(self._rotation_loop(), name="distribution-rotation"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
        self._tasks = []
        for session in list(self.sessions.values()):
            session.close()

    async def _follow(self) -> None:
        async for revision in self.store.subscribe():
            if revision > self.state.revision:
                try:
                    await self.reload()
                except Exception:
                    _log.exception("reloading the mesh state at revision %d failed", revision)

    async def _rotation_loop(self) -> None:
        while True:
            await asyncio.sleep(self.rotation_check_interval)
            try:
                await self.check_rotation()
            except Exception:
                _log.exception("certificate rotation check failed")

    # ------------------------------------------------------------------ state and pushes

    async def reload(self) -> set[str]:
        """Read the store; push to the sidecars of every mesh that changed. Returns those meshes."""
        async with self._lock:
            fresh = await load_state(self.store)
            if fresh.revision <= self.state.revision:
                return set()
            old = self.state
            meshes = set(old.fingerprints) | set(fresh.fingerprints)
            changed = {m for m in meshes if old.fingerprints.get(m) != fresh.fingerprints.get(m)}
            self.state = fresh
            for mesh in changed:
                self._indexes.pop(mesh, None)
            for key, session in list(self.sessions.items()):
                if key[0] in changed:
                    await self._push(session)
            return changed

    async def check_rotation(self) -> int:
        """Renew certificates past 2/3 of their life (by pushing); returns how many were due."""
        now = self.clock()
        due = [s for s in self.sessions.values() if s.cert and s.cert.needs_rotation(now)]
        async with self._lock:
            for session in due:
                await self._push(session)
        return len(due)

    async def _push(self, session: Session) -> None:
        """Compile ``session``'s snapshot and send it if its version is new (lock held)."""
        if session.closed:
            return
        mesh_name, name = session.key
        status = self.statuses.setdefault(session.key, DataplaneStatus())
        mesh = self.state.meshes.get(mesh_name)
        dataplane = self.state.dataplane(mesh_name, name)
        if mesh is None or dataplane is None:
            status.compile_error = "the mesh or the dataplane no longer exists"
            return
        try:
            snap = await self._compile(mesh, dataplane, session)
        except (ConfigError, ValueError) as exc:
            status.compile_error = str(exc)
            _log.error("cannot compile dataplane %s/%s: %s", mesh_name, name, exc)
            return
        status.compile_error = None
        if session.pushed is not None and session.pushed.version == snap.version:
            return
        session.pushed = snap
        status.pushed_version = snap.version
        status.pushes += 1
        not_after = session.cert.not_after.isoformat() if session.cert else None
        session.send(
            message("snapshot", version=snap.version, snapshot=snap.model_dump(mode="json"),
                    cert_not_after=not_after)
        )  # fmt: skip
        _log.info("pushed snapshot %s to %s/%s", snap.version, mesh_name, name)

    async def _compile(
        self, mesh: Mesh, dataplane: Dataplane, session: Session | None
    ) -> snapshot.Snapshot:
        material = None
        if mesh.mtls_enabled:
            roots = await self.ca.trusted_roots(mesh)
            cert = await self._certificate(session, mesh, dataplane) if session else None
            material = MeshTLSMaterial(cert.cert if cert else "", LOCAL_KEY, roots)
        index = self._indexes.get(mesh.name)
        if index is None:
            index = build_mesh_index(mesh.name, self.state.mesh_dataplanes(mesh.name))
            self._indexes[mesh.name] = index
        return compile_dataplane(
            mesh,
            dataplane,
            self.state.mesh_dataplanes(mesh.name),
            self.state.mesh_policies(mesh.name),
            material,
            index=index,
        )

    async def _certificate(
        self, session: Session, mesh: Mesh, dataplane: Dataplane
    ) -> WorkloadCert:
        """The session's workload certificate, (re)signed from its CSR when due."""
        backend = mesh.enabled_backend()
        assert backend is not None
        root = await self.ca.root_for(mesh, backend)
        uris = workload_uris(dataplane) or [spiffe_id(mesh.name, dataplane.name)]
        now = self.clock()
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
        status = self.statuses.setdefault(session.key, DataplaneStatus())
        if current is not None:
            status.cert_regenerations += 1
        status.cert_not_after = issued.not_after
        return issued

    # ------------------------------------------------------------------ sessions

    async def admit(
        self, hello: dict[str, Any], send: Callable[[bytes], None], close: Callable[[], None]
    ) -> Session:
        """Check a ``hello``, register the dataplane, push its first snapshot."""
        try:
            claims = await self.tokens.verify(str(hello.get("token", "")))
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
        await self.reload()
        if resource.mesh not in self.state.meshes:
            raise AdmissionRefused(f"mesh '{resource.mesh}' does not exist")
        key = (resource.mesh, resource.name)
        async with self.store.transaction() as tx:
            await put_resource(tx, resource)
        async with self._lock:
            previous = self.sessions.pop(key, None)
            if previous is not None:
                previous.closed = True
                previous.close()
            session = Session(key, csr, send, close, running_version=hello.get("running"))
            self.sessions[key] = session
            send(message("welcome", mesh=resource.mesh, name=resource.name))
            status = self.statuses.setdefault(key, DataplaneStatus())
            status.connected, status.connected_at = True, time.time()
        await self.reload()
        async with self._lock:
            await self._push(session)
        return session

    def acked(self, session: Session, version: str) -> None:
        status = self.statuses.setdefault(session.key, DataplaneStatus())
        status.acked_version = version
        session.running_version = version

    def nacked(self, session: Session, version: str, error: str) -> None:
        status = self.statuses.setdefault(session.key, DataplaneStatus())
        status.nack = {"version": version, "error": error, "at": time.time()}
        _log.warning("%s/%s refused snapshot %s: %s", *session.key, version, error)

    async def disconnected(self, session: Session, *, graceful: bool) -> None:
        """The sidecar left; a graceful ``bye`` also removes its Dataplane resource."""
        session.closed = True
        if self.sessions.get(session.key) is not session:
            return
        del self.sessions[session.key]
        status = self.statuses.setdefault(session.key, DataplaneStatus())
        status.connected, status.disconnected_at = False, time.time()
        if graceful:
            mesh, name = session.key
            await self.store.delete(entity_type("dataplanes"), entity_id(mesh, name))

    # ------------------------------------------------------------------ inspect

    async def inspect_snapshot(self, mesh_name: str, name: str) -> snapshot.Snapshot | None:
        """The snapshot the dataplane runs (or would run); None when mesh/dataplane are unknown."""
        session = self.sessions.get((mesh_name, name))
        if session is not None and session.pushed is not None:
            return session.pushed
        mesh = self.state.meshes.get(mesh_name)
        dataplane = self.state.dataplane(mesh_name, name)
        if mesh is None or dataplane is None:
            return None
        return await self._compile(mesh, dataplane, None)

    def rules(self, mesh_name: str, name: str) -> dict[str, Any] | None:
        mesh = self.state.meshes.get(mesh_name)
        dataplane = self.state.dataplane(mesh_name, name)
        if mesh is None or dataplane is None:
            return None
        return dataplane_rules(
            mesh, dataplane, self.state.mesh_dataplanes(mesh_name),
            self.state.mesh_policies(mesh_name),
        )  # fmt: skip

    def overview(self, mesh_name: str, name: str) -> dict[str, Any]:
        status = self.statuses.get((mesh_name, name), DataplaneStatus())
        return status.view(self.clock())
