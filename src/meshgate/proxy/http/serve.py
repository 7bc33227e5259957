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
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from meshgate.proxy.compiled import RuntimeState
from meshgate.proxy.http.engine import HttpEngine
from meshgate.proxy.http.server import HttpProxyProtocol
from meshgate.proxy.http.settings import ProxySettings
from meshgate.proxy.tcp.proxy import TcpEngine, engine_of_server, forget_engine
from meshgate.proxy.tls.common import apply_defaults
from meshgate.proxy.tls.mesh_accept import accept_plan
from meshgate.proxy.tls.permissions import InboundGuard

if TYPE_CHECKING:
    from meshgate import snapshot

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
    """Listen for ``listener`` (on ``sock`` when given, e.g. one shared across workers).

    A mesh listener (``mtls`` and/or ``permissions``) terminates mesh mTLS (see
    ``tls.mesh_accept``) and checks each connection's client identity once (again when a
    reload changes the listener's permissions).
    """
    engine = engine_for(state, settings)
    tls = listener.protocol == "https"
    context = make_listener_ssl_context(state) if tls else None
    guard = None
    if listener.mtls is not None or listener.permissions is not None:
        guard = InboundGuard.of(listener)
    _rejudge(engine, listener.name, guard)

    def make_app(is_tls: bool) -> HttpProxyProtocol:
        return HttpProxyProtocol(engine, tls=is_tls, listener_name=listener.name, guard=guard)

    def factory() -> asyncio.BaseProtocol:
        return HttpProxyProtocol(engine, tls=tls, listener_name=listener.name, guard=guard)

    handshake_timeout = settings.client_header_timeout if tls else None
    plan = accept_plan(
        listener,
        state,
        make_app,
        handshake_timeout=settings.client_header_timeout,
        server_speaks_first=False,
    )
    if plan is not None:
        factory, context, handshake_timeout = plan.factory, plan.ssl, plan.handshake_timeout
    server = await create_listening_server(listener, factory, context, handshake_timeout, sock)
    _forget_closed_servers(engine)
    engine.servers.append(server)
    _server_engines[id(server)] = engine
    _freeze_startup_heap()
    return server


def _forget_closed_servers(engine: HttpEngine) -> None:
    """Unlink servers a reload closed, so drain sees when the engine has none left."""
    for closed in [server for server in engine.servers if not server.is_serving()]:
        engine.servers.remove(closed)
        _server_engines.pop(id(closed), None)


def _rejudge(engine: HttpEngine, listener_name: str, guard: InboundGuard | None) -> None:
    """A reload restarts a listener whose permissions changed: the live connections of the
    one it replaces are judged again, so their next request gets the new decision."""
    for client in engine.clients:
        if client.listener_name == listener_name and client.guard != guard:
            client.guard = guard
            client.denied = guard is not None and not guard.allows(
                client.peer_ids, client.client_ip
            )


async def create_listening_server(
    listener: snapshot.Listener,
    factory: Callable[[], asyncio.BaseProtocol],
    context: ssl.SSLContext | None,
    handshake_timeout: float | None,
    sock: socket.socket | None = None,
) -> asyncio.Server:
    """``loop.create_server`` with ``listener``'s address, backlog and port reuse."""
    loop = asyncio.get_running_loop()
    if sock is not None:
        return await loop.create_server(
            factory,
            sock=sock,
            ssl=context,
            backlog=listener.backlog,
            ssl_handshake_timeout=handshake_timeout,
        )
    return await loop.create_server(
        factory,
        host=listener.address,
        port=listener.port,
        ssl=context,
        backlog=listener.backlog,
        reuse_port=listener.reuse_port or None,
        reuse_address=True,
        ssl_handshake_timeout=handshake_timeout,
    )


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
    tcp_engines: dict[int, TcpEngine] = {}
    for server in servers:
        server.close()
        engine = _server_engines.pop(id(server), None)
        if engine is not None:
            engines[id(engine)] = engine
            if server in engine.servers:
                engine.servers.remove(server)
        tcp_engine = engine_of_server(server)
        if tcp_engine is not None:
            tcp_engines[id(tcp_engine)] = tcp_engine
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    for engine in engines.values():
        engine.state.draining = True
    while True:
        open_clients = [c for e in engines.values() for c in e.clients if not c.closed]
        for client in open_clients:
            client.close_if_idle()
        tcp_open = any(e.connections for e in tcp_engines.values())
        if (not open_clients and not tcp_open) or loop.time() >= deadline:
            break
        await asyncio.sleep(min(0.05, max(0.0, deadline - loop.time())))
    for engine in engines.values():
        for client in list(engine.clients):
            client.transport.abort()
        _forget_closed_servers(engine)
        if not engine.servers:
            engine.pools.close_idle()
            engine.sweeper.close()
            if _engines.get(id(engine.state)) is engine:
                del _engines[id(engine.state)]
    for tcp_engine in tcp_engines.values():
        for connection in list(tcp_engine.connections):
            connection.abort()
        if not tcp_engine.servers:
            forget_engine(tcp_engine)
