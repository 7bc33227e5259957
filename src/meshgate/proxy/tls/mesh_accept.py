"""How a listener accepts connections: plain, its own TLS, or mesh mTLS (strict/permissive).

``accept_plan`` gives the protocol factory and the ``ssl`` argument for ``create_server``
from ``Listener.mtls``: none → the application protocol as is; ``strict`` → the mesh
context (client certificate required) on every connection; ``permissive`` → no TLS at the
server level but a ``FirstByteSniffer`` per connection that starts TLS itself when the
client's first byte is a TLS handshake record.  ``make_app(tls)`` builds the application
protocol (HTTP or TCP proxy) once it is known whether the connection is TLS.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from meshgate.proxy.compiled import RuntimeState
from meshgate.proxy.tls.mesh_server import MeshListenerTLS
from meshgate.proxy.tls.sniff import AppFactory, FirstByteSniffer

if TYPE_CHECKING:
    from meshgate import snapshot

# A permissive TCP listener treats a client silent this long as plain text (its server may
# be the one that speaks first); TLS clients send their ClientHello right after connecting.
PLAIN_AFTER_SILENCE = 1.0


@dataclass(frozen=True, slots=True)
class AcceptPlan:
    factory: Callable[[], asyncio.BaseProtocol]
    ssl: ssl.SSLContext | None
    handshake_timeout: float | None


def accept_plan(
    listener: snapshot.Listener,
    state: RuntimeState,
    make_app: AppFactory,
    *,
    handshake_timeout: float,
    server_speaks_first: bool,
) -> AcceptPlan | None:
    """The plan for a mesh mTLS listener; None when ``listener`` has no ``mtls``.

    The TLS material is read from the running config at each handshake (after a reload):
    when it lacks it, handshakes fail and the error is logged.
    """
    mtls = listener.mtls
    if mtls is None:
        return None
    tls = MeshListenerTLS(listener, state)
    context = tls.context
    if mtls.mode == "strict":
        return AcceptPlan(lambda: make_app(True), context, handshake_timeout)
    silence = PLAIN_AFTER_SILENCE if server_speaks_first else handshake_timeout

    def sniffer() -> FirstByteSniffer:
        return FirstByteSniffer(
            make_app,
            context,
            handshake_timeout=handshake_timeout,
            silence_timeout=silence,
            plain_on_silence=server_speaks_first,
        )

    return AcceptPlan(sniffer, None, None)
