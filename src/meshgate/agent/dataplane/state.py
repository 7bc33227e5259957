"""A sidecar's state directory: its private key, its CSR, the last good snapshot, the pinned CP.

Files (``--state-dir``):

* ``key.pem`` — the workload private key (mode 0600), made once; only CSRs leave the host;
* ``csr.json`` — the certificate request for that key (and the key's digest), made once: the
  control plane only reads the public key from it, so the same request serves every session;
* ``snapshot.json`` — the last snapshot the proxy ran successfully, as the control plane
  sent it (the workload key is not in it: ``with_local_key`` puts it back on load), read and
  written by ``snapshot_codec`` (the serving process holds snapshots as its Structs);
* ``cp-fingerprint`` — the control plane certificate pinned on first use (``sha256:<hex>``).

Only making a key or a CSR needs the ``cryptography`` package (``keys``); it is imported then
and not otherwise, so a sidecar whose state directory is ready (``meshgate dp`` prepares it
before the serving process starts) never loads it.  Writes go to a temporary file renamed
into place, so a crash never leaves half a file.
"""

from __future__ import annotations

import hashlib
import json
import os
import ssl
from pathlib import Path
from typing import TYPE_CHECKING

from meshgate.agent.dataplane import snapshot_codec
from meshgate.agent.dataplane.protocol import LOCAL_KEY
from meshgate.proxy.tls.common import load_pem_pairs

if TYPE_CHECKING:
    from meshgate import snapshot

_PEM_KEY_MARKER = "PRIVATE KEY-----"


class StateDir:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)

    # ---------------------------------------------------------------- key and CSR

    def key_pem(self) -> str:
        """The stored private key (PEM), made and saved first when there is none."""
        try:
            text = (self.path / "key.pem").read_text()
        except (OSError, UnicodeDecodeError):
            text = ""
        if _PEM_KEY_MARKER in text:
            return text
        return self._new_key()

    def csr(self, name: str) -> str:
        """A certificate request for the stored key (the CP decides the SANs)."""
        key_pem = self.key_pem()
        digest = hashlib.sha256(key_pem.encode()).hexdigest()
        cached = self._cached_csr()
        if cached.get("key_sha256") == digest and cached.get("name") == name:
            return str(cached["csr"])
        from meshgate.agent.dataplane import keys

        try:
            request = keys.make_csr(key_pem, name)
        except ValueError:  # unreadable or not an EC key: replace it, as a missing one
            key_pem = self._new_key()
            digest = hashlib.sha256(key_pem.encode()).hexdigest()
            request = keys.make_csr(key_pem, name)
        record = {"key_sha256": digest, "name": name, "csr": request}
        self._write(self.path / "csr.json", json.dumps(record).encode())
        return request

    def _cached_csr(self) -> dict[str, object]:
        try:
            loaded = json.loads((self.path / "csr.json").read_bytes())
        except (OSError, ValueError):
            return {}
        return loaded if isinstance(loaded, dict) and isinstance(loaded.get("csr"), str) else {}

    def _new_key(self) -> str:
        from meshgate.agent.dataplane import keys

        pem = keys.new_key_pem()
        self._write(self.path / "key.pem", pem.encode(), mode=0o600)
        return pem

    # ---------------------------------------------------------------- snapshot cache

    def load_snapshot(self) -> snapshot.Snapshot | None:
        """The cached snapshot as received (None when absent or unreadable)."""
        try:
            return snapshot_codec.from_json((self.path / "snapshot.json").read_bytes())
        except (OSError, ValueError):
            return None

    def save_snapshot(self, snap: snapshot.Snapshot) -> None:
        self._write(self.path / "snapshot.json", snapshot_codec.to_json(snap))

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

    ``ValueError`` when such a certificate was not issued for this key (OpenSSL, through
    ``ssl``, checks that the key belongs to the certificate).
    """
    if not any(cert.key == LOCAL_KEY for cert in snap.certificates):
        return snap
    certificates = []
    for cert in snap.certificates:
        if cert.key == LOCAL_KEY:
            probe = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            try:
                load_pem_pairs(probe, [(cert.cert, key_pem)], f"certificate {cert.id}")
            except ValueError:
                raise ValueError(
                    f"certificate {cert.id} was not issued for this sidecar's key"
                ) from None
            cert = snapshot_codec.replace(cert, key=key_pem)
        certificates.append(cert)
    return snapshot_codec.replace(snap, certificates=tuple(certificates))
