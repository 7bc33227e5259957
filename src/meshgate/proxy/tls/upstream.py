"""Client-side TLS towards upstreams: contexts memoized by what they verify and present.

``UpstreamTLS.context_for`` returns the same ``UpstreamContext`` object for the same inputs
(compared by PEM content, not by id), so a snapshot reload keeps its contexts and the
connection pools keyed by them.

``verify_depth`` (Kong's ``tls_verify_depth``, OpenSSL's verify depth: at most that many
intermediate CAs between the peer certificate and the trust anchor) cannot be set on a
Python ``ssl`` context.  It is kept on the context and enforced after the handshake by
``check_verify_depth(transport)``, which the engine calls once per new upstream connection.
It reads the verified chain through ``SSLObject.get_verified_chain`` (public from Python
3.13; on 3.11/3.12 the same method of the private ``_sslobj``).  Where neither exists the
depth is not enforced.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from meshgate.proxy.tls.common import apply_defaults, load_pem_pairs
from meshgate.proxy.tls.identity import PeerCheckingSSLObject

if TYPE_CHECKING:
    from meshgate import snapshot

_ClientMaterial = tuple[str, str, str | None, str | None]
_Key = tuple[bool, int | None, tuple[str, ...], _ClientMaterial | None, tuple[str, ...]]


class UpstreamContext(ssl.SSLContext):
    """A client ``SSLContext`` that also carries the verify depth to enforce."""

    verify_depth: int | None = None
    peer_ids: frozenset[str] = frozenset()  # non-empty: one must be a URI SAN of the peer


class UpstreamTLS:
    """A bounded cache of upstream client contexts (least recently used ones go first)."""

    def __init__(self, max_contexts: int = 256) -> None:
        self.max_contexts = max_contexts
        self._contexts: OrderedDict[_Key, UpstreamContext] = OrderedDict()

    def __len__(self) -> int:
        return len(self._contexts)

    def context_for(
        self,
        verify: bool,
        verify_depth: int | None,
        ca_certificates: Sequence[snapshot.CACertificate],
        client_certificate: snapshot.Certificate | None,
        peer_ids: Sequence[str] = (),
    ) -> UpstreamContext:
        """The context for these settings; identical settings give the identical object.

        ``verify`` False: no certificate or host name check.  True: the peer must present
        a certificate chaining to ``ca_certificates`` (the system's CAs when empty) and
        naming the host.  ``client_certificate`` is presented when the upstream asks (mTLS).
        ``peer_ids`` (non-empty) implies verification, with one of these URI SANs required
        of the peer instead of its host name.  Bad PEM material raises ``ValueError``.
        """
        client_material = (
            None
            if client_certificate is None
            else (
                client_certificate.cert,
                client_certificate.key,
                client_certificate.cert_alt,
                client_certificate.key_alt,
            )
        )
        verify = verify or bool(peer_ids)
        key: _Key = (
            verify,
            verify_depth if verify else None,
            tuple(ca.cert for ca in ca_certificates) if verify else (),
            client_material,
            tuple(sorted(set(peer_ids))),
        )
        context = self._contexts.get(key)
        if context is not None:
            self._contexts.move_to_end(key)
            return context
        context = _new_context(*key)
        self._contexts[key] = context
        if len(self._contexts) > self.max_contexts:
            self._contexts.popitem(last=False)
        return context


def check_verify_depth(transport: asyncio.BaseTransport) -> None:
    """Raise ``ssl.SSLCertVerificationError`` if the peer's chain is deeper than allowed.

    A no-op for plain connections, contexts without a depth limit, or unverified peers.
    """
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return
    context = ssl_object.context
    depth = getattr(context, "verify_depth", None)
    if depth is None or context.verify_mode == ssl.CERT_NONE:
        return
    chain = _verified_chain(ssl_object)
    if chain is not None and len(chain) > depth + 2:
        raise ssl.SSLCertVerificationError(
            f"certificate chain too long: {len(chain) - 2} intermediate CAs, "
            f"verify depth is {depth}"
        )


def _verified_chain(ssl_object: Any) -> list[Any] | None:
    method = getattr(ssl_object, "get_verified_chain", None)
    if method is None:
        method = getattr(getattr(ssl_object, "_sslobj", None), "get_verified_chain", None)
    if method is None:
        return None
    chain = method()
    return list(chain) if chain is not None else None


def _new_context(
    verify: bool,
    verify_depth: int | None,
    ca_pems: tuple[str, ...],
    client_material: _ClientMaterial | None,
    peer_ids: tuple[str, ...],
) -> UpstreamContext:
    context = UpstreamContext(ssl.PROTOCOL_TLS_CLIENT)
    apply_defaults(context)
    if peer_ids:
        context.peer_ids = frozenset(peer_ids)
        context.sslobject_class = PeerCheckingSSLObject
    if verify:
        context.verify_mode = ssl.CERT_REQUIRED
        context.check_hostname = not peer_ids
        context.verify_depth = verify_depth
        if ca_pems:
            try:
                context.load_verify_locations(cadata="\n".join(ca_pems))
            except ssl.SSLError as exc:
                raise ValueError(f"ca_certificates: cannot load: {exc}") from exc
        else:
            context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    else:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if client_material is not None:
        cert, key, cert_alt, key_alt = client_material
        pairs = [(cert, key)]
        if cert_alt is not None and key_alt is not None:
            pairs.append((cert_alt, key_alt))
        load_pem_pairs(context, pairs, "client certificate")
    return context
