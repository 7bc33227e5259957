"""The TLS material the mesh compiler needs for one dataplane, and its ids in the snapshot.

The control plane's CA (``meshgate.controlplane.ca``) issues it; the compiler only places it:
the workload certificate becomes ``Snapshot.certificates[WORKLOAD_CERT_ID]`` (served by
inbound listeners, presented to upstreams), each trusted root a ``CACertificate``
``mesh-ca:<backend>``.
"""

from __future__ import annotations

from dataclasses import dataclass

from meshgate import snapshot

WORKLOAD_CERT_ID = "mesh-workload"


@dataclass(frozen=True, slots=True)
class MeshTLSMaterial:
    """A dataplane's workload certificate/key and the roots its mesh trusts (PEM)."""

    workload_cert: str
    workload_key: str
    # (backend name, root certificate PEM): the enabled backend first, then the others
    # (proxies trust every backend's root, so a CA switch does not break running traffic)
    trusted_roots: tuple[tuple[str, str], ...]

    def certificate(self) -> snapshot.Certificate:
        return snapshot.Certificate(
            id=WORKLOAD_CERT_ID, cert=self.workload_cert, key=self.workload_key
        )

    def ca_certificates(self) -> tuple[snapshot.CACertificate, ...]:
        return tuple(
            snapshot.CACertificate(id=f"mesh-ca:{backend}", cert=pem)
            for backend, pem in self.trusted_roots
        )
