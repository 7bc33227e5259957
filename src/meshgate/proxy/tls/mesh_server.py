"""Server-side TLS of mesh inbound listeners (``Listener.mtls``): workload certificate,
client certificates checked against the mesh CAs.

A listener keeps one ``ssl.SSLContext`` for its lifetime, but its certificate rotates with
snapshots (same id, new PEM).  ``MeshListenerTLS.context`` therefore holds only the verify
mode; its SNI callback — called on every handshake, with or without SNI — hands the
connection to the context built from the material of the config current at that moment.
Those contexts are built once per config change and memoized by PEM content, so a reload
that does not touch the material costs one dictionary look-up on the next handshake.

``strict`` requires a client certificate (``CERT_REQUIRED``); ``permissive`` asks for one
(``CERT_OPTIONAL``) and lets a handshake without one through.
"""

from __future__ import annotations

import logging
import ssl
from collections import OrderedDict
from typing import TYPE_CHECKING

from meshgate.proxy.compiled import CompiledConfig, RuntimeState
from meshgate.proxy.tls.common import apply_defaults, load_pem_pairs

if TYPE_CHECKING:
    from meshgate import snapshot

_log = logging.getLogger("meshgate.proxy.mesh")

_Material = tuple[str, str, tuple[str, ...], bool]  # cert, key, CA PEMs, strict
_built: OrderedDict[_Material, ssl.SSLContext] = OrderedDict()
_MAX_BUILT = 64


def mesh_server_context(
    certificate: snapshot.Certificate, client_cas: tuple[str, ...], strict: bool
) -> ssl.SSLContext:
    """A context serving ``certificate`` that verifies clients against ``client_cas`` (PEM).

    Identical material gives the identical object.  Bad PEM material raises ``ValueError``.
    """
    key: _Material = (certificate.cert, certificate.key, client_cas, strict)
    context = _built.get(key)
    if context is not None:
        _built.move_to_end(key)
        return context
    context = _verifying_context(client_cas, strict)
    load_pem_pairs(context, [(certificate.cert, certificate.key)], "mesh workload certificate")
    _built[key] = context
    if len(_built) > _MAX_BUILT:
        _built.popitem(last=False)
    return context


def _verifying_context(client_cas: tuple[str, ...], strict: bool) -> ssl.SSLContext:
    context = apply_defaults(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    if not client_cas:
        raise ValueError("mesh mTLS listener without client CAs")
    try:
        context.load_verify_locations(cadata="\n".join(client_cas))
    except ssl.SSLError as exc:
        raise ValueError(f"mesh client CAs: cannot load: {exc}") from exc
    context.verify_mode = ssl.CERT_REQUIRED if strict else ssl.CERT_OPTIONAL
    return context


class MeshListenerTLS:
    """The TLS context of one mesh listener, following the running config's material."""

    __slots__ = ("_config", "_current", "_reported", "context", "mtls", "name", "state")

    def __init__(self, listener: snapshot.Listener, state: RuntimeState) -> None:
        assert listener.mtls is not None
        self.name = listener.name
        self.mtls = listener.mtls
        self.state = state
        self._config: CompiledConfig | None = None
        self._current: ssl.SSLContext | None = None
        self._reported: CompiledConfig | None = None  # the config whose failure was logged
        # OpenSSL keeps this context's verify mode after the SNI switch, and verifies against
        # the store of the context switched to.  No material is read here: the runtime starts
        # listeners before the config that holds it goes live.
        context = apply_defaults(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
        context.verify_mode = ssl.CERT_REQUIRED if self.mtls.mode == "strict" else ssl.CERT_OPTIONAL
        context.sni_callback = self._on_sni
        self.context = context

    def current(self) -> ssl.SSLContext:
        """The context holding the material of the config running now (``ValueError`` when
        that config lacks it)."""
        config = self.state.config
        if config is not self._config or self._current is None:
            snap = config.snapshot
            wanted = self.mtls.certificate
            cert = next((c for c in snap.certificates if c.id == wanted), None) if snap else None
            if cert is None:
                raise ValueError(
                    f"listener {self.name}: certificate {wanted!r} is not in the snapshot"
                )
            self._current = mesh_server_context(
                cert, self._ca_pems(config), self.mtls.mode == "strict"
            )
            self._config = config
        return self._current

    def _ca_pems(self, config: CompiledConfig) -> tuple[str, ...]:
        snap = config.snapshot
        wanted = set(self.mtls.client_cas)
        return tuple(ca.cert for ca in snap.ca_certificates if ca.id in wanted) if snap else ()

    def _on_sni(
        self,
        ssl_object: ssl.SSLObject,
        server_name: str,  # None when the client sent no SNI (typeshed says str)
        listener_context: ssl.SSLContext,
    ) -> int | None:
        try:
            ssl_object.context = self.current()
        except ValueError as exc:
            if self._reported is not self.state.config:  # once per config, not per handshake
                self._reported = self.state.config
                _log.error("mesh listener %s: handshakes fail: %s", self.name, exc)
            return ssl.ALERT_DESCRIPTION_HANDSHAKE_FAILURE
        return None
