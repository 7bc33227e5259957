"""What every meshgate TLS context shares: protocol floor, ALPN, and loading PEM text.

Python's ``ssl`` loads certificates and keys only from files, so ``load_pem_pairs`` writes
them to a private temporary directory (mode 0700, files 0600), loads them and removes them
before returning.
"""

from __future__ import annotations

import os
import ssl
import tempfile
from collections.abc import Iterable

ALPN_PROTOCOLS = ("http/1.1",)  # no h2 yet


def apply_defaults(context: ssl.SSLContext) -> ssl.SSLContext:
    """TLS 1.2 or newer, no compression, no renegotiation, ALPN ``http/1.1``."""
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    context.set_alpn_protocols(list(ALPN_PROTOCOLS))
    return context


def load_pem_pairs(context: ssl.SSLContext, pairs: Iterable[tuple[str, str]], what: str) -> None:
    """Load each ``(certificate chain PEM, private key PEM)`` into ``context``.

    Two pairs of different key types (RSA and ECDSA) live side by side in one context and
    OpenSSL serves the one the peer's signature algorithms allow.  ``what`` names the
    material in the ``ValueError`` raised when it does not load.
    """
    with tempfile.TemporaryDirectory(prefix="meshgate-tls-") as directory:
        for index, (cert_pem, key_pem) in enumerate(pairs):
            cert_path = _write_private(directory, f"cert{index}.pem", cert_pem)
            key_path = _write_private(directory, f"key{index}.pem", key_pem)
            try:
                context.load_cert_chain(cert_path, key_path)
            except (ssl.SSLError, OSError) as exc:
                raise ValueError(f"{what}: cannot load certificate/key: {exc}") from exc
            finally:
                os.unlink(cert_path)
                os.unlink(key_path)


def _write_private(directory: str, name: str, text: str) -> str:
    path = os.path.join(directory, name)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as file:
        file.write(text)
    return path
