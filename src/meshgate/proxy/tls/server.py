"""Server-side TLS for https listeners: one context per certificate, chosen by SNI.

``build_server_context`` returns the context a listener wraps its connections with.  Its
``sni_callback`` picks a certificate for the name the client sent, in Kong's order:

1. a certificate whose ``snis`` hold the name exactly;
2. a wildcard in the leftmost label (``*.example.com`` matches ``a.example.com``, not
   ``a.b.example.com``);
3. a wildcard in the rightmost label (``example.*`` matches ``example.org``);
4. the default certificate (``default_certificate``, else the first one).

With no certificate to serve the handshake fails with an ``unrecognized_name`` alert.
Names compare case-insensitively, without a trailing dot; when two certificates claim the
same name the first one wins (the compiler rejects that anyway).

``sni_of(transport)`` gives the engine the name the client asked for, for routes' ``snis``.
"""

from __future__ import annotations

import asyncio
import ssl
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING

from meshgate.proxy.tls.common import apply_defaults, load_pem_pairs

if TYPE_CHECKING:
    from meshgate import snapshot

# SSLObject (or SSLSocket) -> the SNI name it was asked for.  The server side of an SSLObject
# has no public way to read it back, so the SNI callback records it here.
_requested_names: weakref.WeakKeyDictionary[ssl.SSLObject | ssl.SSLSocket, str] = (
    weakref.WeakKeyDictionary()
)


def build_server_context(
    certificates: Sequence[snapshot.Certificate],
    default_certificate: str | None,
    *,
    use_first_as_default: bool = True,
    client_cas: Sequence[snapshot.CACertificate] = (),
    require_client_certificate: bool = False,
) -> ssl.SSLContext | None:
    """A server context serving ``certificates`` by SNI, or None when there are none.

    ``default_certificate`` is a certificate id served when no name matches (or the client
    sent none); without it the first certificate is, unless ``use_first_as_default`` is
    False — then such handshakes fail.

    With ``client_cas`` clients are asked for a certificate issued by one of them (mTLS);
    it is optional unless ``require_client_certificate``.  The peer certificate is then in
    ``transport.get_extra_info("peercert")``.

    Bad PEM material, an unknown default id, or requiring client certificates without CAs
    raises ``ValueError``.
    """
    if not certificates:
        return None
    if require_client_certificate and not client_cas:
        raise ValueError("requiring client certificates needs client_cas")
    client_ca_pems = "\n".join(ca.cert for ca in client_cas)

    def new_context() -> ssl.SSLContext:
        # after an SNI switch OpenSSL keeps the first context's verify mode but verifies
        # against the new one's CA store, so every context gets the same settings
        context = apply_defaults(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
        if client_ca_pems:
            try:
                context.load_verify_locations(cadata=client_ca_pems)
            except ssl.SSLError as exc:
                raise ValueError(f"client_cas: cannot load: {exc}") from exc
            context.verify_mode = (
                ssl.CERT_REQUIRED if require_client_certificate else ssl.CERT_OPTIONAL
            )
        return context

    contexts = {cert.id: _certificate_context(cert, new_context()) for cert in certificates}
    if default_certificate is not None:
        if default_certificate not in contexts:
            raise ValueError(f"default certificate {default_certificate!r} is not in the snapshot")
        default: ssl.SSLContext | None = contexts[default_certificate]
    elif use_first_as_default:
        default = contexts[certificates[0].id]
    else:
        default = None
    listener_context = default if default is not None else new_context()
    listener_context.sni_callback = _SniTable(certificates, contexts, default).on_sni
    return listener_context


def sni_of(transport: asyncio.BaseTransport) -> str | None:
    """The SNI name (lower-case) the client sent on this TLS connection, if any."""
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    return _requested_names.get(ssl_object)


class _SniTable:
    """SNI name -> the context holding the certificate for it."""

    def __init__(
        self,
        certificates: Sequence[snapshot.Certificate],
        contexts: dict[str, ssl.SSLContext],
        default: ssl.SSLContext | None,
    ) -> None:
        self.exact: dict[str, ssl.SSLContext] = {}
        self.leftmost_wildcards: dict[str, ssl.SSLContext] = {}  # ".example.com" -> context
        self.rightmost_wildcards: dict[str, ssl.SSLContext] = {}  # "example." -> context
        self.default = default
        for cert in certificates:
            for raw_name in cert.snis:
                name = _normalise(raw_name)
                if name.startswith("*."):
                    self.leftmost_wildcards.setdefault(name[1:], contexts[cert.id])
                elif name.endswith(".*"):
                    self.rightmost_wildcards.setdefault(name[:-1], contexts[cert.id])
                else:
                    self.exact.setdefault(name, contexts[cert.id])

    def select(self, name: str | None) -> ssl.SSLContext | None:
        if name is None:
            return self.default
        found = self.exact.get(name)
        if found is not None:
            return found
        first_dot = name.find(".")
        if first_dot > 0:
            found = self.leftmost_wildcards.get(name[first_dot:])
            if found is not None:
                return found
        last_dot = name.rfind(".")
        if last_dot > 0:
            found = self.rightmost_wildcards.get(name[: last_dot + 1])
            if found is not None:
                return found
        return self.default

    def on_sni(
        self,
        ssl_object: ssl.SSLObject | ssl.SSLSocket,
        server_name: str | None,
        listener_context: ssl.SSLContext,
    ) -> int | None:
        name = _normalise(server_name) if server_name else None
        if name is not None:
            _requested_names[ssl_object] = name
        chosen = self.select(name)
        if chosen is None:
            return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
        if chosen is not listener_context:
            ssl_object.context = chosen
        return None


def _certificate_context(cert: snapshot.Certificate, context: ssl.SSLContext) -> ssl.SSLContext:
    if (cert.cert_alt is None) != (cert.key_alt is None):
        raise ValueError(f"certificate {cert.id!r}: cert_alt and key_alt go together")
    pairs = [(cert.cert, cert.key)]
    if cert.cert_alt is not None and cert.key_alt is not None:
        pairs.append((cert.cert_alt, cert.key_alt))
    load_pem_pairs(context, pairs, f"certificate {cert.id!r}")
    return context


def _normalise(name: str) -> str:
    return name.lower().rstrip(".")
