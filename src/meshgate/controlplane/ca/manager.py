"""``MeshCA``: per-mesh roots (created once, persisted) and per-dataplane workload certificates.

``material_for(mesh, dataplane)`` is what the control plane calls before compiling a
dataplane's snapshot: it returns the dataplane's current workload certificate, issuing a new
one when there is none, when 2/3 of its lifetime have passed, when the dataplane's
identities changed, or when the mesh's enabled CA changed.  Certificates are kept in memory
only (a restarted control plane issues fresh ones, as Kuma does); roots go to ``CAStorage``.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from pathlib import Path

from meshgate.compiler.mesh_tls import MeshTLSMaterial
from meshgate.controlplane.ca.certs import (
    RootCA,
    WorkloadCert,
    generate_root,
    issue_workload,
    issued_by,
    load_provided,
)
from meshgate.controlplane.ca.storage import CAStorage
from meshgate.resources.mesh.dataplane import Dataplane
from meshgate.resources.mesh.identity import spiffe_id, workload_dns_names, workload_uris
from meshgate.resources.mesh.mesh import CABackend, DataSource, Mesh


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class MeshCA:
    """The built-in CA of every mesh one control plane serves."""

    def __init__(
        self,
        storage: CAStorage,
        *,
        clock: Callable[[], datetime.datetime] = utc_now,
        read_file: Callable[[str], str] = lambda path: Path(path).read_text(encoding="ascii"),
    ) -> None:
        self.storage = storage
        self.clock = clock
        self.read_file = read_file
        self._roots: dict[tuple[str, str], RootCA] = {}
        self._workloads: dict[tuple[str, str], WorkloadCert] = {}
        self.issued = 0  # workload certificates issued so far (for metrics and tests)

    async def root_for(self, mesh: Mesh, backend: CABackend) -> RootCA:
        """The root of one backend: provided material, or the stored/new builtin root."""
        key = (mesh.name, backend.name)
        if backend.type == "provided":
            assert backend.conf.cert is not None  # the model requires both for "provided"
            assert backend.conf.key is not None
            root = load_provided(self._read(backend.conf.cert), self._read(backend.conf.key))
            self._roots[key] = root
            return root
        cached = self._roots.get(key)
        if cached is not None:
            return cached
        root_or_none = await self.storage.get_root(mesh.name, backend.name)
        if root_or_none is None:
            ca_cert = backend.conf.ca_cert
            fresh = generate_root(
                mesh.name,
                now=self.clock(),
                ttl_seconds=backend.root_ttl_ms / 1000,
                rsa_bits=ca_cert.rsa_bits if ca_cert is not None else None,
            )
            root_or_none = await self.storage.create_root(mesh.name, backend.name, fresh)
        self._roots[key] = root_or_none
        return root_or_none

    async def trusted_roots(self, mesh: Mesh) -> tuple[tuple[str, str], ...]:
        """(backend, root PEM) of every backend, the enabled one first; empty if mTLS is off."""
        enabled = mesh.enabled_backend()
        if enabled is None or mesh.mtls is None:
            return ()
        ordered = [enabled] + [b for b in mesh.mtls.backends if b.name != enabled.name]
        return tuple([(b.name, (await self.root_for(mesh, b)).cert) for b in ordered])

    async def workload_for(self, mesh: Mesh, dataplane: Dataplane) -> WorkloadCert | None:
        """The dataplane's current certificate (re-issued when due); None if mTLS is off."""
        backend = mesh.enabled_backend()
        if backend is None:
            return None
        root = await self.root_for(mesh, backend)
        # a dataplane without inbounds (a pure client) is named after itself
        uris = workload_uris(dataplane) or [spiffe_id(mesh.name, dataplane.name)]
        key = (mesh.name, dataplane.name)
        now = self.clock()
        current = self._workloads.get(key)
        if (
            current is not None
            and current.uris == tuple(uris)
            and not current.needs_rotation(now)
            and issued_by(current.cert, root)
        ):
            return current
        issued = issue_workload(
            root,
            uris,
            now=now,
            ttl_seconds=backend.workload_ttl_ms / 1000,
            dns_names=workload_dns_names(dataplane),
            common_name=dataplane.name,
        )
        self._workloads[key] = issued
        self.issued += 1
        return issued

    async def material_for(self, mesh: Mesh, dataplane: Dataplane) -> MeshTLSMaterial | None:
        """What ``compile_dataplane`` needs; None when the mesh has no mTLS."""
        workload = await self.workload_for(mesh, dataplane)
        if workload is None:
            return None
        return MeshTLSMaterial(
            workload_cert=workload.cert,
            workload_key=workload.key,
            trusted_roots=await self.trusted_roots(mesh),
        )

    def forget(self, mesh: str, dataplane: str) -> None:
        """Drop a dataplane's certificate (it left the mesh)."""
        self._workloads.pop((mesh, dataplane), None)

    def next_rotation(self, mesh: str, dataplane: str) -> datetime.datetime | None:
        """When the dataplane's certificate becomes due for rotation (None: none issued)."""
        current = self._workloads.get((mesh, dataplane))
        if current is None:
            return None
        return current.not_before + (current.not_after - current.not_before) * (2 / 3)

    def _read(self, source: DataSource) -> str:
        if source.inline_string is not None:
            return source.inline_string
        assert source.file is not None
        return self.read_file(source.file)
