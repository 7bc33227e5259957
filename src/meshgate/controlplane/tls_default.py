"""Kong's default certificate: https listeners with nothing configured serve a self-signed one."""

from __future__ import annotations

from meshgate import snapshot
from meshgate.proxy.tls.certs import generate_self_signed

DEFAULT_CERT_ID = "00000000-0000-4000-8000-00000000cafe"


def with_default_certificate(
    snap: snapshot.Snapshot, generated: tuple[str, str] | None
) -> tuple[snapshot.Snapshot, tuple[str, str] | None]:
    """``snap`` with a self-signed default certificate when an https listener has none.

    ``generated`` is the (cert, key) pair made earlier by this node, reused so that reloads do
    not change the certificate (nor the snapshot's version); the pair in use is returned.
    """
    https = [ln for ln in snap.listeners if ln.protocol == "https"]
    if not https or snap.certificates:
        return snap, generated
    pair = generated or generate_self_signed(["localhost", "127.0.0.1"])
    cert = snapshot.Certificate(id=DEFAULT_CERT_ID, cert=pair[0], key=pair[1])
    listeners = tuple(
        ln.model_copy(update={"default_certificate": DEFAULT_CERT_ID})
        if ln.protocol == "https"
        else ln
        for ln in snap.listeners
    )
    updated = snap.model_copy(update={"certificates": (cert,), "listeners": listeners})
    return updated.with_version(), pair
