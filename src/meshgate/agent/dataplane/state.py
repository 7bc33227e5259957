"""A sidecar's state directory: its private key, the last good snapshot, the pinned CP.

Files (``--state-dir``):

* ``key.pem`` — the workload private key (mode 0600), made once; only CSRs leave the host;
* ``snapshot.json`` — the last snapshot the proxy ran successfully, as the control plane
  sent it (the workload key is not in it: ``with_local_key`` puts it back on load);
* ``cp-fingerprint`` — the control plane certificate pinned on first use (``sha256:<hex>``).

Writes go to a temporary file renamed into place, so a crash never leaves half a file.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from meshgate import snapshot
from meshgate.agent.dataplane.protocol import LOCAL_KEY


class StateDir:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)

    # ---------------------------------------------------------------- key and CSR

    def private_key(self) -> ec.EllipticCurvePrivateKey:
        """The stored key, or a new one (saved)."""
        key_path = self.path / "key.pem"
        with contextlib.suppress(FileNotFoundError, ValueError):
            loaded = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            if isinstance(loaded, ec.EllipticCurvePrivateKey):
                return loaded
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self._write(key_path, pem, mode=0o600)
        return key

    def key_pem(self) -> str:
        return (
            self.private_key()
            .private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            .decode()
        )

    def csr(self, name: str) -> str:
        """A certificate request for the stored key (the CP decides the SANs)."""
        key = self.private_key()
        request = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name[:64])]))
            .sign(key, hashes.SHA256())
        )
        return request.public_bytes(serialization.Encoding.PEM).decode()

    # ---------------------------------------------------------------- snapshot cache

    def load_snapshot(self) -> snapshot.Snapshot | None:
        """The cached snapshot as received (None when absent or unreadable)."""
        try:
            return snapshot.Snapshot.from_json((self.path / "snapshot.json").read_bytes())
        except (OSError, ValueError):
            return None

    def save_snapshot(self, snap: snapshot.Snapshot) -> None:
        self._write(self.path / "snapshot.json", snap.to_json().encode())

    # ---------------------------------------------------------------- CP pin

    def pinned_fingerprint(self) -> str | None:
        try:
            return (self.path / "cp-fingerprint").read_text().strip() or None
        except OSError:
            return None

    def pin_fingerprint(self, fingerprint: str) -> None:
        self._write(self.path / "cp-fingerprint", fingerprint.encode() + b"\n")

    def _write(self, path: Path, data: bytes, mode: int = 0o644) -> None:
        temporary = path.with_name(path.name + ".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)


def with_local_key(snap: snapshot.Snapshot, key_pem: str) -> snapshot.Snapshot:
    """``snap`` with the sidecar's key in every certificate the CP left keyless.

    ``ValueError`` when such a certificate was not issued for this key.
    """
    if not any(cert.key == LOCAL_KEY for cert in snap.certificates):
        return snap
    key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    ours = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    certificates = []
    for cert in snap.certificates:
        if cert.key == LOCAL_KEY:
            leaf = x509.load_pem_x509_certificate(cert.cert.encode())
            theirs = leaf.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            if theirs != ours:
                raise ValueError(f"certificate {cert.id} was not issued for this sidecar's key")
            cert = cert.model_copy(update={"key": key_pem})
        certificates.append(cert)
    return snap.model_copy(update={"certificates": tuple(certificates)})
