"""HTTPS and mutual TLS for the Admin API: which files to serve with, checked before serving.

``AdminTLS(cert_file, key_file, client_ca_file=None)``: the Admin API serves HTTPS with that
certificate; with ``client_ca_file`` it also requires every client to present a certificate
signed by one of those CAs (the TLS handshake fails otherwise, before any HTTP is read).
``check()`` loads the files into a throw-away context so a bad path, a key that does not match
the certificate or an unreadable CA file is reported at start, as a ``ValueError``.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class AdminTLS:
    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None

    @property
    def requires_client_cert(self) -> bool:
        return self.client_ca_file is not None

    def check(self) -> None:
        """``ValueError`` saying which file is wrong when the files cannot serve TLS."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.load_cert_chain(self.cert_file, self.key_file)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(
                f"cannot use the Admin API certificate {self.cert_file} with key "
                f"{self.key_file}: {exc}"
            ) from None
        if self.client_ca_file is not None:
            try:
                context.load_verify_locations(cafile=self.client_ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise ValueError(
                    f"cannot read the Admin API client CA {self.client_ca_file}: {exc}"
                ) from None

    def uvicorn_options(self) -> dict[str, Any]:
        """The ``uvicorn.Config`` keyword arguments that serve this."""
        options: dict[str, Any] = {
            "ssl_certfile": str(self.cert_file),
            "ssl_keyfile": str(self.key_file),
        }
        if self.client_ca_file is not None:
            options["ssl_ca_certs"] = str(self.client_ca_file)
            options["ssl_cert_reqs"] = ssl.CERT_REQUIRED
        return options
