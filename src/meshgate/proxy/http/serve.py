"""Starting HTTP(S) listeners on the engine and draining them.

The runtime calls ``start_http_listener`` once per listener; every listener started for the
same ``RuntimeState`` in a process shares one ``HttpEngine`` (upstream pools, timers).
``drain`` stops accepting, lets requests in flight finish, closes idle keep-alive
connections and, at the timeout, aborts what is left.

TLS across reloads: a listener's ``ssl.SSLContext`` lives as long as the listener, but
certificates change with snapshots.  ``make_listener_ssl_context`` builds that long-lived
context with an SNI callback which, per handshake, hands the connection to
``state.config.server_ssl_context`` of the config current at that moment (running that
context's own SNI selection when it has one).  A handshake with no current server context
fails with a ``handshake_failure`` alert.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import ssl
from collections.abc import Sequence

from meshgate import snapshot
from meshgate.proxy.compiled import RuntimeState
from meshgate.proxy.http.engine import HttpEngine
from meshgate.proxy.http.server import HttpProxyProtocol
from meshgate.proxy.http.settings import ProxySettings
from meshgate.proxy.tls.common import apply_defaults

_engines: dict[int, HttpEngine] = {}  # id(RuntimeState) -> its engine in this process
_server_engines: dict[int, HttpEngine] = {}  # id(asyncio.Server) -> engine
_heap_frozen = False


def engine_for(state: RuntimeState, settings: ProxySettings) -> HttpEngine:
    """The engine of ``state`` in the running loop (made on first use)."""
    loop = asyncio.get_running_loop()
    engine = _engines.get(id(state))
    if engine is None or engine.state is not state or engine.loop is not loop:
        engine = HttpEngine(state, settings, loop)
        _engines[id(state)] = engine
    return engine


def make_listener_ssl_context(state: RuntimeState) -> ssl.SSLContext:
    """A listener context that takes its certificates from whatever config is current."""
    context = apply_defaults(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))

    def on_sni(
        ssl_object: ssl.SSLObject,
        server_name: str,  # None when the client sent no SNI (typeshed says str)
        listener_context: ssl.SSLContext,
    ) -> int | None:
        current = state.config.server_ssl_context
        if current is None:
            return ssl.ALERT_DESCRIPTION_HANDSHAKE_FAILURE
        select = current.sni_callback
        if select is None:
            ssl_object.context = current
            return None
        # The config's callback switches to the chosen context whenever it differs from the
        # context passed in — always the case with ours, which holds no certificate.
        return select(ssl_object, server_name, listener_context)

    context.sni_callback = on_sni
    return context


async def start_http_listener(
    listener: snapshot.Listener,
    state: RuntimeState,
    settings: ProxySettings,
    sock: socket.socket | None = None,
) -> asyncio.Server:
    """Listen for ``listener`` (on ``sock`` when given, e.g. one shared across workers)."""
    loop = asyncio.get_running_loop()
    engine = engine_for(state, settings)
    tls = listener.protocol == "https"
    context = make_listener_ssl_context(state) if tls else None

    def factory() -> HttpProxyProtocol:
        return HttpProxyProtocol(engine, tls=tls)

    handshake_timeout = settings.client_header_timeout if tls else None
    if sock is not None:
        server = await loop.create_server(
            factory,
            sock=sock,
            ssl=context,
            backlog=listener.backlog,
            ssl_handshake_timeout=handshake_timeout,
        )
    else:
        server = await loop.create_server(
            factory,
            host=listener.address,
            port=listener.port,
            ssl=context,
            backlog=listener.backlog,
            reuse_port=listener.reuse_port or None,
            reuse_address=True,
            ssl_handshake_timeout=handshake_timeout,
        )
    engine.servers.append(server)
    _server_engines[id(server)] = engine
    _freeze_startup_heap()
    return server


def _freeze_startup_heap() -> None:
    """Once per process: move everything allocated so far (modules, the first config) out of
    the cyclic GC's reach, so the collections that per-request garbage triggers stop
    re-traversing it.  Costs at most that first config's memory if it is ever dropped."""
    global _heap_frozen
    if not _heap_frozen:
        _heap_frozen = True
        gc.collect()
        gc.freeze()


async def drain(servers: Sequence[asyncio.Server], timeout: float) -> None:
    """Stop ``servers`` gracefully: in-flight requests get up to ``timeout`` seconds.

    Responses finishing meanwhile carry ``Connection: close``; idle keep-alive connections
    are closed at once; whatever is still open at the timeout is aborted.
    """
    engines: dict[int, HttpEngine] = {}
    for server in servers:
        server.close()
        engine = _server_engines.pop(id(server), None)
        if engine is not None:
            engines[id(engine)] = engine
            if server in engine.servers:
                engine.servers.remove(server)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    for engine in engines.values():
        engine.state.draining = True
    while True:
        open_clients = [c for e in engines.values() for c in e.clients if not c.closed]
        for client in open_clients:
            client.close_if_idle()
        if not open_clients or loop.time() >= deadline:
            break
        await asyncio.sleep(min(0.05, max(0.0, deadline - loop.time())))
    for engine in engines.values():
        for client in list(engine.clients):
            client.transport.abort()
        if not engine.servers:
            engine.pools.close_idle()
            engine.sweeper.close()
            if _engines.get(id(engine.state)) is engine:
                del _engines[id(engine.state)]
