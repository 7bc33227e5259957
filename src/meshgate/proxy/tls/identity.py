"""Mesh identities on TLS connections: the URI SANs (SPIFFE ids) of a verified peer.

``uri_sans`` reads them from ``getpeercert()``'s dict (empty when the peer sent no
certificate or it was not verified); ``peer_ids_of`` from a transport.

Upstream identity check: a client context whose ``peer_ids`` is non-empty wraps its
connections in ``PeerCheckingSSLObject`` (``sslobject_class``), which fails the handshake
with ``PeerIdentityError`` when the verified server certificate carries none of those URI
SANs.  The failure surfaces where every TLS failure does — ``create_connection`` raises an
``ssl.SSLError`` — so HTTP and TCP upstream code need nothing extra to honour it.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any


class PeerIdentityError(ssl.SSLCertVerificationError):
    """The upstream's certificate is valid but is not one of the expected identities."""

    reason = "upstream-identity-mismatch"  # the ``meshgate-error`` an HTTP client should see

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else self.reason


def uri_sans(peercert: dict[str, Any] | None) -> tuple[str, ...]:
    """The URI subject alternative names of a ``getpeercert()`` result, in order."""
    if not peercert:
        return ()
    return tuple(value for kind, value in peercert.get("subjectAltName", ()) if kind == "URI")


def peer_ids_of(transport: asyncio.BaseTransport) -> tuple[str, ...]:
    """The URI SANs of the verified certificate the peer of ``transport`` presented."""
    return uri_sans(transport.get_extra_info("peercert"))


class PeerCheckingSSLObject(ssl.SSLObject):
    """An ``SSLObject`` whose handshake also requires one of ``context.peer_ids``."""

    def do_handshake(self) -> None:
        super().do_handshake()
        expected: frozenset[str] = getattr(self.context, "peer_ids", frozenset())
        if not expected:
            return
        presented = uri_sans(self.getpeercert())
        if expected.isdisjoint(presented):
            shown = ", ".join(presented) or "none"
            raise PeerIdentityError(
                f"upstream identity mismatch: expected one of {', '.join(sorted(expected))}, "
                f"certificate has {shown}"
            )
